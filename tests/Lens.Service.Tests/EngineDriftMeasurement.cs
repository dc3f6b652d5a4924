using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Engine;
using Lens.Grains;
using Lens.Measurement;
using Lens.Silo;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Lens.Service.Tests;

/// <summary>
/// A measurement, not a test: drift on the real reference engine (wall-clock timings, so nothing about them is asserted). Profiles
/// the tiny engine through the service, slows one decode bucket with <see cref="ReferenceEngine.SetSlowdown"/>, feeds observed
/// latencies of the slowed engine through the HTTP telemetry route and reports what the monitor did and the held-out error
/// (plain and refined) before and after. Runs only with <c>LENS_MEASURE_DRIFT=1</c> (it takes tens of seconds).
/// </summary>
public sealed class EngineDriftMeasurement(ITestOutputHelper output)
{
    private const string Key = "acme-key-0123456789abcdef";

    [Fact]
    public async Task Drift_of_one_bucket_on_the_reference_engine()
    {
        if (Environment.GetEnvironmentVariable("LENS_MEASURE_DRIFT") != "1")
        {
            output.WriteLine("skipped: set LENS_MEASURE_DRIFT=1 to measure");
            return;
        }

        using var engine = ReferenceEngine.Create(EngineProfiles.Load("tiny"));
        var backend = new ReferenceEngineBackend(engine);
        var options = new LensServerOptions
        {
            SiloPort = TestModels.FreePort(),
            GatewayPort = TestModels.FreePort(),
            HttpPort = 0,
            ServiceId = "lens-engine-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["acme"] = Key },
        };
        await using var server = await LensHost.StartAsync(options, b =>
        {
            b.Logging.SetMinimumLevel(LogLevel.Warning);
            b.Services.AddSingleton<IMeasurementBackendFactory>(new SharedEngineFactory(backend)); // the test holds the engine
        });
        using var http = new HttpClient { BaseAddress = server.HttpAddress, Timeout = TimeSpan.FromSeconds(60) };
        var lens = new LensHttpClient(http, Key);
        const string device = "cpu";
        var spec = new DeploymentSpec("tiny", "reference-tiny", [.. engine.Buckets.Prefill], [.. engine.Buckets.Decode],
            new BackendSpec(BackendSpec.Reference, EngineProfile: "tiny"), Repeats: Setting("LENS_MEASURE_REPEATS", 5));
        var id = (await lens.CreateDeploymentAsync(device, spec)).Id;
        await lens.StartProfileAsync(device, id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(300));
        Assert.Equal(ProfileState.Completed, (await lens.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token)).State);

        var random = new Random(17);
        var steady = await ObserveAsync(backend, engine.Buckets, random, 200);
        var steadyMape = await MapeAsync(lens, device, id, steady, refined: false);

        var slowBucket = new BucketId(BucketKind.Decode, engine.Buckets.Decode[2]);
        var factor = Setting("LENS_MEASURE_SLOWDOWN", 2);
        engine.SetSlowdown(slowBucket, factor);
        var heldOut = await ObserveAsync(backend, engine.Buckets, random, 200);
        var driftedMape = await MapeAsync(lens, device, id, heldOut, refined: false);
        double refinedMape = double.NaN;
        string? reprofiled = null;
        for (var batch = 0; batch < 12 && reprofiled is null; batch++)
        {
            var result = await lens.ReportTelemetryAsync(device, id, new MeasurementBatch(await ObserveAsync(backend, engine.Buckets, random, 50), $"b{batch}"));
            output.WriteLine($"batch {batch}: drifting [{string.Join(", ", result.Drifting ?? [])}], re-profiling {result.Reprofiling ?? "-"}");
            reprofiled = result.Reprofiling;
            if (batch == 0)
            {
                refinedMape = await MapeAsync(lens, device, id, heldOut, refined: true);
            }
        }

        Assert.Equal(ProfileState.Completed, (await lens.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token)).State);
        var fresh = await ObserveAsync(backend, engine.Buckets, random, 200);
        var repairedMape = await MapeAsync(lens, device, id, fresh, refined: false);
        var repairedRefined = await MapeAsync(lens, device, id, fresh, refined: true);
        var health = await lens.GetHealthAsync(device, id);
        output.WriteLine($"slowed {slowBucket} x{factor}, {spec.Repeats} repeats; re-profiled: {reprofiled ?? "none"}; common shift {health.CommonShift:P1}");
        output.WriteLine($"E2E MAPE: steady {steadyMape:F2}%; drifted {driftedMape:F2}% (refined after one batch {refinedMape:F2}%); " +
                         $"after the re-profile {repairedMape:F2}% (refined {repairedRefined:F2}%)");
        foreach (var b in health.Buckets)
        {
            output.WriteLine($"  {b.Bucket}: n={b.Observations} mape={b.MeanApe:F2}% shift={b.Shift:P1} band={b.Band:P1} drifting={b.Drifting} " +
                             $"count={b.ConsecutiveDrift} stale={b.Stale}");
        }
    }

    private static int Setting(string name, int fallback) => int.TryParse(Environment.GetEnvironmentVariable(name), out var v) ? v : fallback;

    private static async Task<MeasurementInput[]> ObserveAsync(IMeasurementBackend backend, BucketSet buckets, Random random, int count)
    {
        var result = new MeasurementInput[count];
        for (var i = 0; i < count; i++)
        {
            var input = random.Next(1, buckets.Prefill[^1] + 1);
            var outputLength = random.Next(1, buckets.MaxSequence - input + 1);
            var timed = await backend.MeasureAsync(input, outputLength);
            result[i] = new MeasurementInput(input, outputLength, timed.E2eMs, timed.TtftMs);
        }

        return result;
    }

    private static async Task<double> MapeAsync(LensHttpClient lens, string device, string id, MeasurementInput[] observed, bool refined)
    {
        var p = await lens.PredictBatchAsync(device, id, [.. observed.Select(o => o.InputLength)], [.. observed.Select(o => o.OutputLength)],
            refined: refined);
        return observed.Select((o, i) => Math.Abs(p.E2eMs[i] - o.E2eMs) / o.E2eMs * 100).Average();
    }

    private sealed class SharedEngineFactory(IMeasurementBackend backend) : IMeasurementBackendFactory
    {
        public IMeasurementBackend Create(BackendSpec spec) =>
            spec.Kind == BackendSpec.Reference ? backend : throw new NotSupportedException($"only the shared reference engine here, not {spec.Kind}");
    }
}
