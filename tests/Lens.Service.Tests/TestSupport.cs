using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Lens.Abstractions;
using Lens.Core;
using Lens.Grains;
using Lens.Measurement;
using Microsoft.Extensions.Logging;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Lens.Service.Tests;

/// <summary>A small fitted deployment to replay: hand-picked A and S, so that a profile of it must recover exactly these numbers.</summary>
internal static class TestModels
{
    public static readonly int[] Prefill = [128, 256, 512];
    public static readonly int[] Decode = [128, 256, 512, 1024];

    public static DeploymentModel Source(double decode256Factor = 1)
    {
        var buckets = new BucketSet(Prefill, Decode);
        double[] a = [20, 35, 60];
        double[] s = [5, 5.5 * decode256Factor, 6.25, 7.5];
        return new DeploymentModel(buckets, [.. Prefill.Select((p, i) => new PrefillValues(p, a[i], 0, a[i], 0, double.NaN))],
            [.. Decode.Select((d, j) => new DecodeValues(d, s[j], 0))], RepeatStatistic.Min, 0);
    }

    public static DeploymentSpec Spec(string name, string control = "", int repeats = 1, string sdk = "2.19") =>
        new(name, "llama-3.1-8b", Prefill, Decode, new BackendSpec(BackendSpec.Replay, ModelName: control, ModelJson: ModelJson.Serialize(Source())),
            SdkVersion: sdk, Dtype: "bf16", Repeats: repeats);

    /// <summary>Asserts that <paramref name="json"/> (a served model) has exactly the values of <paramref name="expected"/>.</summary>
    public static void AssertSameModel(DeploymentModel expected, string json)
    {
        var actual = ModelJson.Deserialize(json, "served model");
        Assert.Equal(expected.Buckets, actual.Buckets);
        for (var i = 0; i < expected.PrefillBuckets.Count; i++)
        {
            Assert.Equal(expected.PrefillBuckets[i].AMs, actual.PrefillBuckets[i].AMs, 9);
        }

        for (var j = 0; j < expected.DecodeBuckets.Count; j++)
        {
            Assert.Equal(expected.DecodeBuckets[j].StepMs, actual.DecodeBuckets[j].StepMs, 9);
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Polls <paramref name="probe"/> until it returns true; fails after <paramref name="seconds"/>. Never asserts timings.</summary>
    public static async Task Until(Func<Task<bool>> probe, string what, int seconds = 60)
    {
        for (var i = 0; i < seconds * 20; i++)
        {
            if (await probe())
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"timed out after {seconds} s waiting for {what}");
    }
}

/// <summary>What a test lets a replayed device do: slow one decode bucket, fail transiently, take a little time; counts calls.</summary>
internal sealed class BackendControl
{
    private static readonly ConcurrentDictionary<string, BackendControl> All = new();
    private int _measured;
    private int _failures;
    private int _inFlight;
    private int _maxInFlight;

    public static BackendControl For(string name) => All.GetOrAdd(name, _ => new BackendControl());

    public ConcurrentDictionary<int, double> DecodeSlowdown { get; } = new();

    public TimeSpan Delay { get; set; }

    /// <summary>Once this many measurements are done, further calls wait (until it is cleared or they are cancelled).</summary>
    public int? PauseAfter { get; set; }

    /// <summary>Whether a call has waited at <see cref="PauseAfter"/>.</summary>
    public bool Paused { get; private set; }

    public int Measured => Volatile.Read(ref _measured);

    /// <summary>The most measurements ever in progress at once on this backend.</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    public void FailTransiently(int times) => Volatile.Write(ref _failures, times);

    internal bool TakeFailure() => Interlocked.Decrement(ref _failures) >= 0;

    internal void Count() => Interlocked.Increment(ref _measured);

    internal void Enter()
    {
        var now = Interlocked.Increment(ref _inFlight);
        int max;
        while (now > (max = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, now, max) != max)
        {
        }
    }

    internal void Leave() => Interlocked.Decrement(ref _inFlight);

    internal async Task WaitWhilePausedAsync(CancellationToken cancellationToken)
    {
        while (PauseAfter is { } n && Measured >= n)
        {
            Paused = true;
            await Task.Delay(10, cancellationToken);
        }
    }
}

/// <summary>
/// Replay backends under a test's <see cref="BackendControl"/> (named by the spec's model name); other kinds go to
/// <see cref="Fallback"/> (the silo's own factory) when there is one.
/// </summary>
internal sealed class ControlledBackendFactory : IMeasurementBackendFactory
{
    public IMeasurementBackendFactory? Fallback { get; init; }

    public IMeasurementBackend Create(string tenant, BackendSpec spec)
    {
        if (spec.Kind != BackendSpec.Replay && Fallback is not null)
        {
            return Fallback.Create(tenant, spec);
        }

        var model = ModelJson.Deserialize(spec.ModelJson!, "replay");
        return new ControlledBackend(model, BackendControl.For(spec.ModelName ?? ""));
    }

    private sealed class ControlledBackend(DeploymentModel model, BackendControl control) : IMeasurementBackend
    {
        public string Describe => "controlled replay";

        public async Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default)
        {
            control.Enter();
            try
            {
                if (control.Delay > TimeSpan.Zero)
                {
                    await Task.Delay(control.Delay, cancellationToken);
                }

                await control.WaitWhilePausedAsync(cancellationToken);
                if (control.TakeFailure())
                {
                    throw new MeasurementFailedException("injected transient fault", isTransient: true);
                }

                var replay = new ModelReplayBackend(model) { DecodeSlowdown = new Dictionary<int, double>(control.DecodeSlowdown) };
                var timed = await replay.MeasureAsync(inputLength, outputLength, cancellationToken);
                control.Count();
                return timed;
            }
            finally
            {
                control.Leave();
            }
        }

        public async Task<IReadOnlyList<TimedRequest>> MeasureGroupAsync(int inputLength, int outputLength, int batch,
            CancellationToken cancellationToken = default)
        {
            await control.WaitWhilePausedAsync(cancellationToken);
            if (control.TakeFailure())
            {
                throw new MeasurementFailedException("injected transient fault", isTransient: true);
            }

            var timed = await new ModelReplayBackend(model).MeasureGroupAsync(inputLength, outputLength, batch, cancellationToken);
            control.Count();
            return timed;
        }
    }
}

/// <summary>
/// What a test's LENS server logs that is expected and says nothing about the test: Orleans' placement retries when a silo's
/// hosted client has stopped (Polly, one stack trace per attempt), the ServerGC note, the watchdog and health monitor on a shared
/// machine's starved CPU, the lowered reminder period. Test hosts only; a call that still fails throws to the test, and every
/// other warning (LENS' own included) is still shown.
/// </summary>
internal static class TestLogging
{
    public static ILoggingBuilder QuietExpected(this ILoggingBuilder logging) => logging
        .AddFilter("Polly", LogLevel.None)
        .AddFilter("Orleans.Runtime.Silo", LogLevel.Error)
        .AddFilter("Orleans.Runtime.Watchdog", LogLevel.Error)
        .AddFilter("Orleans.Runtime.MembershipService.LocalSiloHealthMonitor", LogLevel.Error)
        .AddFilter("Orleans.Hosting.ReminderOptionsValidator", LogLevel.Error);
}
