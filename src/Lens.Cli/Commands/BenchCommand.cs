using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Lens.Client;
using Lens.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class BenchSettings : CommandSettings
{
    [CommandOption("--server <URL>")]
    [Description("The LENS server's HTTP address (transport http), e.g. http://127.0.0.1:5080.")]
    public string? Server { get; init; }

    [CommandOption("--api-key-env <VAR>")]
    [Description("With --server: the environment variable holding the tenant's API key.")]
    public string? ApiKeyEnv { get; init; }

    [CommandOption("--gateway <PORTS>")]
    [Description("Transport orleans: the silos' gateway ports on 127.0.0.1, comma-separated (e.g. 30000,30001,30002).")]
    public string? Gateway { get; init; }

    [CommandOption("--tenant <NAME>")]
    [Description("Transport orleans: the tenant (the Orleans client is trusted, as a co-located service is).")]
    public string? Tenant { get; init; }

    [CommandOption("--cluster-id <ID>")]
    [Description("Transport orleans: the cluster id.")]
    [DefaultValue("lens")]
    public string ClusterId { get; init; } = "lens";

    [CommandOption("--service-id <ID>")]
    [Description("Transport orleans: the service id.")]
    [DefaultValue("lens")]
    public string ServiceId { get; init; } = "lens";

    [CommandOption("--device <NAME>")]
    public string? Device { get; init; }

    [CommandOption("--deployment <ID>")]
    public string? Deployment { get; init; }

    [CommandOption("--clients <N>")]
    [Description("Concurrent clients.")]
    [DefaultValue(8)]
    public int Clients { get; init; } = 8;

    [CommandOption("--requests <N>")]
    [Description("Calls in all (each a single prediction, or a batch of --batch).")]
    [DefaultValue(20000)]
    public int Requests { get; init; } = 20000;

    [CommandOption("--batch <N>")]
    [Description("Predictions per call; 1 sends single predictions.")]
    [DefaultValue(1)]
    public int Batch { get; init; } = 1;

    [CommandOption("--max-seconds <S>")]
    [Description("Stop early after this long, whatever is left.")]
    [DefaultValue(60)]
    public int MaxSeconds { get; init; } = 60;

    [CommandOption("--warmup <N>")]
    [Description("Untimed calls first (JIT, connections, grain activation).")]
    [DefaultValue(500)]
    public int Warmup { get; init; } = 500;

    [CommandOption("--seed <S>")]
    [DefaultValue(0)]
    public int Seed { get; init; }

    [CommandOption("--json")]
    public bool Json { get; init; }

    public override ValidationResult Validate()
    {
        if ((Server is null) == (Gateway is null))
        {
            return ValidationResult.Error("give --server (HTTP) or --gateway (Orleans client), one of them");
        }

        if (Gateway is not null && Tenant is null)
        {
            return ValidationResult.Error("--gateway needs --tenant");
        }

        if (Device is null || Deployment is null)
        {
            return ValidationResult.Error("--device and --deployment are required");
        }

        return Clients is < 1 or > 1024 || Requests < 1 || Batch is < 1 or > 100_000 || MaxSeconds < 1 || Warmup < 0
            ? ValidationResult.Error("--clients must be 1..1024, --batch 1..100000, --requests and --max-seconds at least 1, --warmup at least 0")
            : ValidationResult.Success();
    }
}

/// <summary>Figures of one load run.</summary>
public sealed record BenchResult(string Transport, int Clients, int Batch, long Calls, long Failed, double Seconds, double CallsPerSecond,
    double PredictionsPerSecond, double P50Ms, double P90Ms, double P99Ms, double MaxMs);

/// <summary>
/// A bounded load generator: N concurrent clients send single or batched predictions to a running LENS service, over HTTP or through
/// the Orleans client, and report predictions per second and per-call latency percentiles. Loopback only, bounded in calls and time.
/// </summary>
public sealed class BenchCommand : AsyncCommand<BenchSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, BenchSettings settings, CancellationToken cancellationToken)
    {
        IHost? orleans = null;
        Func<int[], int[], Task> call;
        string transport;
        if (settings.Server is not null)
        {
            var handler = new SocketsHttpHandler { MaxConnectionsPerServer = settings.Clients, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
            var http = Remote.Connect(settings.Server, settings.ApiKeyEnv, handler);
            call = (i, o) => i.Length == 1
                ? http.PredictAsync(settings.Device!, settings.Deployment!, i[0], o[0], cancellationToken)
                : http.PredictBatchAsync(settings.Device!, settings.Deployment!, i, o, cancellationToken);
            transport = "http";
        }
        else
        {
            orleans = await StartOrleansClientAsync(settings, cancellationToken);
            var client = new LensClusterClient(orleans.Services.GetRequiredService<IClusterClient>(), settings.Tenant!);
            call = (i, o) => i.Length == 1
                ? client.PredictAsync(settings.Device!, settings.Deployment!, i[0], o[0])
                : client.PredictBatchAsync(settings.Device!, settings.Deployment!, i, o);
            transport = "orleans";
        }

        try
        {
            // Lengths valid for the deployment: read its buckets once.
            var buckets = await BucketsAsync(settings, orleans, cancellationToken);
            var result = await RunAsync(settings, transport, buckets, call, cancellationToken);
            if (settings.Json)
            {
                CliJson.Write(result);
            }
            else
            {
                AnsiConsole.MarkupLineInterpolated(
                    $"[bold]{result.PredictionsPerSecond:N0} predictions/s[/] ({result.CallsPerSecond:N0} calls/s) over {transport}, {result.Clients} clients, batch {result.Batch}: {result.Calls} calls in {result.Seconds:0.00} s, {result.Failed} failed; per call p50 {result.P50Ms:0.###} ms, p90 {result.P90Ms:0.###} ms, p99 {result.P99Ms:0.###} ms, max {result.MaxMs:0.###} ms");
            }

            return result.Failed == 0 ? LensApp.Ok : LensApp.Failure;
        }
        finally
        {
            if (orleans is not null)
            {
                await orleans.StopAsync(CancellationToken.None);
                orleans.Dispose();
            }
        }
    }

    private static async Task<BucketSet> BucketsAsync(BenchSettings settings, IHost? orleans, CancellationToken ct)
    {
        var info = orleans is null
            ? await Remote.Connect(settings.Server!, settings.ApiKeyEnv).GetDeploymentAsync(settings.Device!, settings.Deployment!, ct)
            : await new LensClusterClient(orleans.Services.GetRequiredService<IClusterClient>(), settings.Tenant!)
                .GetDeploymentAsync(settings.Device!, settings.Deployment!);
        return info.Spec.ToBucketSet();
    }

    private static async Task<BenchResult> RunAsync(BenchSettings settings, string transport, BucketSet buckets, Func<int[], int[], Task> call,
        CancellationToken ct)
    {
        // Pre-drawn requests: the generator does no work per call beyond picking the next one.
        var rng = new Random(settings.Seed);
        var maxInput = Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1);
        const int Pool = 1024;
        var inputs = new int[Pool][];
        var outputs = new int[Pool][];
        for (var n = 0; n < Pool; n++)
        {
            inputs[n] = new int[settings.Batch];
            outputs[n] = new int[settings.Batch];
            for (var b = 0; b < settings.Batch; b++)
            {
                inputs[n][b] = rng.Next(1, maxInput + 1);
                outputs[n][b] = rng.Next(1, buckets.MaxSequence - inputs[n][b] + 1);
            }
        }

        for (var n = 0; n < settings.Warmup; n++)
        {
            await call(inputs[n % Pool], outputs[n % Pool]);
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(settings.MaxSeconds));
        var latencies = new double[settings.Requests];
        long next = -1, failed = 0, done = 0;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, settings.Clients).Select(_ => Task.Run(async () =>
        {
            while (!deadline.IsCancellationRequested)
            {
                var n = Interlocked.Increment(ref next);
                if (n >= settings.Requests)
                {
                    return;
                }

                var start = Stopwatch.GetTimestamp();
                try
                {
                    await call(inputs[n % Pool], outputs[n % Pool]);
                }
                catch (Exception) when (!ct.IsCancellationRequested)
                {
                    Interlocked.Increment(ref failed);
                }

                latencies[n] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                Interlocked.Increment(ref done);
            }
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(workers);
        var seconds = clock.Elapsed.TotalSeconds;
        var sorted = latencies.Take((int)done).Order().ToArray();
        double Q(double q) => sorted.Length == 0 ? double.NaN : RepeatStatistic.QuantileOfSorted(sorted, q);
        return new BenchResult(transport, settings.Clients, settings.Batch, done, failed, seconds, done / seconds, done * settings.Batch / seconds,
            Q(0.5), Q(0.9), Q(0.99), sorted.Length == 0 ? double.NaN : sorted[^1]);
    }

    private static async Task<IHost> StartOrleansClientAsync(BenchSettings settings, CancellationToken ct)
    {
        var ports = settings.Gateway!.Split(',', StringSplitOptions.TrimEntries).Select(p =>
            int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
                ? port
                : throw new CliException($"--gateway '{p}' is not a port number")).ToArray();
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(client => client.UseStaticClustering(
            ports.Select(p => new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, p)).ToArray())
            .Configure<Orleans.Configuration.ClusterOptions>(o =>
            {
                o.ClusterId = settings.ClusterId;
                o.ServiceId = settings.ServiceId;
            }));
        var host = builder.Build();
        await host.StartAsync(ct);
        return host;
    }
}
