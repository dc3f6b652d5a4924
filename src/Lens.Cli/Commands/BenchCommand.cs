using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Grains;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class BenchSettings : CommandSettings
{
    [CommandOption("--server <URLS>")]
    [Description("Transport http: the LENS servers' HTTP addresses, comma-separated (e.g. http://127.0.0.1:5190,http://127.0.0.1:5191); client i calls URL i mod their number.")]
    public string? Server { get; init; }

    [CommandOption("--api-key-env <VAR>")]
    [Description("With --server: the environment variable holding the tenant's API key.")]
    public string? ApiKeyEnv { get; init; }

    [CommandOption("--gateway <PORTS>")]
    [Description("Transport orleans: the silos' gateway ports on 127.0.0.1, comma-separated (e.g. 30000,30001,30002); one Orleans client per port, and client i calls through port i mod their number.")]
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
    [Description("Concurrent clients (at least one per --server URL or --gateway port).")]
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

    [CommandOption("--batch-format <FORMAT>")]
    [Description("Transport http, --batch above 1: the body of batch calls, binary (application/vnd.lens.batch, the SDK's default) or json.")]
    [DefaultValue("binary")]
    public string BatchFormat { get; init; } = "binary";

    [CommandOption("--max-seconds <S>")]
    [Description("Stop early after this long, whatever is left.")]
    [DefaultValue(60)]
    public int MaxSeconds { get; init; } = 60;

    [CommandOption("--warmup <N>")]
    [Description("Untimed calls first: one to each --server URL or --gateway port in turn, then the rest by all clients at once (JIT, connections, grain activation).")]
    [DefaultValue(500)]
    public int Warmup { get; init; } = 500;

    [CommandOption("--seed <S>")]
    [DefaultValue(0)]
    public int Seed { get; init; }

    [CommandOption("--bad-key-rate <R>")]
    [Description("Transport http: during the timed run, also send about R requests/s with a wrong API key (at most 64 in flight) to the first --server URL, as a failed-authentication flood; their answers (401, 429) are counted.")]
    public double? BadKeyRate { get; init; }

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

        if (BatchFormat is not ("binary" or "json"))
        {
            return ValidationResult.Error($"--batch-format '{BatchFormat}' is not one of binary, json");
        }

        if (Device is null || Deployment is null)
        {
            return ValidationResult.Error("--device and --deployment are required");
        }

        if (BadKeyRate is { } flood && (Server is null || !(flood is >= 1 and <= 100_000)))
        {
            return ValidationResult.Error($"--bad-key-rate needs --server and a rate in 1..100000 requests/s; got {flood}");
        }

        if (Server is not null)
        {
            foreach (var url in Split(Server))
            {
                if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
                {
                    return ValidationResult.Error($"--server '{url}' is not an http(s) URL such as http://127.0.0.1:5080");
                }
            }

        }

        if (Gateway is not null && Split(Gateway).FirstOrDefault(p => ParsePort(p) is null) is { } bad)
        {
            return ValidationResult.Error($"--gateway '{bad}' is not a port number (1..65535)");
        }

        var (targets, what) = Server is not null ? (Split(Server).Length, "--server URLs") : (Split(Gateway!).Length, "--gateway ports");
        if (Clients >= 1 && Clients < targets)
        {
            return ValidationResult.Error($"--clients {Clients} is fewer than the {targets} {what}: client i uses the (i mod {targets})th, so give at least {targets}");
        }

        return Clients is < 1 or > 1024 || Requests < 1 || Batch is < 1 or > 100_000 || MaxSeconds < 1 || Warmup < 0
            ? ValidationResult.Error("--clients must be 1..1024, --batch 1..100000, --requests and --max-seconds at least 1, --warmup at least 0")
            : ValidationResult.Success();
    }

    /// <summary>The --server URLs, in order (a URL may repeat).</summary>
    internal string[] ServerUrls => Split(Server!);

    /// <summary>The --gateway ports, in order; valid once <see cref="Validate"/> passed.</summary>
    internal int[] GatewayPorts => Split(Gateway!).Select(p => ParsePort(p)!.Value).ToArray();

    private static string[] Split(string list) => list.Split(',', StringSplitOptions.TrimEntries);

    private static int? ParsePort(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536 ? port : null;
}

/// <summary>Figures of one load run.</summary>
/// <param name="Targets">How many --server URLs or --gateway ports (a repeated one counts each time) the calls were spread over.</param>
/// <param name="BadKey">The wrong-key flood sent alongside (--bad-key-rate), null without one.</param>
public sealed record BenchResult(string Transport, string? BatchFormat, int Targets, int Clients, int Batch, long Calls, long Failed, double Seconds, double CallsPerSecond,
    double PredictionsPerSecond, double P50Ms, double P90Ms, double P99Ms, double MaxMs, BadKeyFlood? BadKey = null);

/// <summary>What a wrong-key flood sent and got back: requests sent per second, answers 401 and 429, and any other outcome.</summary>
public sealed record BadKeyFlood(long Sent, double PerSecond, long Unauthorized, long Throttled, long Other);

/// <summary>
/// A bounded load generator: N concurrent clients send single or batched predictions to a running LENS service, over HTTP or through
/// the Orleans client, and report predictions per second and per-call latency percentiles. Given several servers (URLs or gateways),
/// client i calls the (i mod n)th. Loopback only, bounded in calls and time.
/// </summary>
public sealed class BenchCommand : AsyncCommand<BenchSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, BenchSettings settings, CancellationToken cancellationToken)
    {
        List<IHost> orleans = [];
        try
        {
            return await BenchAsync(settings, orleans, cancellationToken);
        }
        finally
        {
            foreach (var host in orleans)
            {
                await host.StopAsync(CancellationToken.None);
                host.Dispose();
            }
        }
    }

    /// <summary>The run itself; the Orleans clients it starts go into <paramref name="orleans"/>, for the caller to stop.</summary>
    private static async Task<int> BenchAsync(BenchSettings settings, List<IHost> orleans, CancellationToken cancellationToken)
    {
        // One entry per target (URL or gateway): client i, and warm-up call i, use calls[i mod their number].
        Func<int[], int[], Task>[] calls;
        string[] names; // what each entry of calls reaches, for messages
        string transport;
        Func<Task<DeploymentInfo>> deployment;
        if (settings.Server is not null)
        {
            var urls = settings.ServerUrls;
            var https = urls.Select((url, u) =>
            {
                // Each URL its own connection pool, sized for the clients that call it.
                var clients = (settings.Clients - u + urls.Length - 1) / urls.Length;
                var handler = new SocketsHttpHandler { MaxConnectionsPerServer = Math.Max(1, clients), PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
                return Remote.Connect(url, settings.ApiKeyEnv, handler, binaryBatches: settings.BatchFormat == "binary");
            }).ToArray();
            calls = https.Select(http => (Func<int[], int[], Task>)((i, o) => i.Length == 1
                ? http.PredictAsync(settings.Device!, settings.Deployment!, i[0], o[0], cancellationToken)
                : http.PredictManyAsync(settings.Device!, settings.Deployment!, i, o, cancellationToken))).ToArray();
            deployment = () => https[0].GetDeploymentAsync(settings.Device!, settings.Deployment!, cancellationToken);
            names = urls;
            transport = "http";
        }
        else
        {
            // One Orleans client per gateway, as separate client processes would be: a client sends every call to a grain through
            // the same gateway, and all predictions of a tenant go to one (stateless worker) grain, so one client given every
            // gateway would load a single silo.
            var ports = settings.GatewayPorts;
            foreach (var port in ports)
            {
                orleans.Add(await StartOrleansClientAsync(settings, port, cancellationToken));
            }

            var clients = orleans.Select(host => new LensClusterClient(host.Services.GetRequiredService<IClusterClient>(), settings.Tenant!)).ToArray();
            calls = clients.Select(client => (Func<int[], int[], Task>)((i, o) => i.Length == 1
                ? client.PredictAsync(settings.Device!, settings.Deployment!, i[0], o[0])
                : client.PredictManyAsync(settings.Device!, settings.Deployment!, i, o))).ToArray();
            deployment = () => clients[0].GetDeploymentAsync(settings.Device!, settings.Deployment!);
            names = ports.Select(p => $"the Orleans gateway 127.0.0.1:{p}").ToArray();
            transport = "orleans";
        }

        // Lengths valid for the deployment: read its buckets once.
        var buckets = (await deployment()).Spec.ToBucketSet();
        var result = await RunAsync(settings, transport, buckets, calls, names, cancellationToken);
        if (settings.Json)
        {
            CliJson.Write(result);
        }
        else
        {
            AnsiConsole.MarkupLineInterpolated(
                $"[bold]{result.PredictionsPerSecond:N0} predictions/s[/] ({result.CallsPerSecond:N0} calls/s) over {transport} to {result.Targets} {(transport == "http" ? "URL" : "gateway")}(s), {result.Clients} clients, batch {result.Batch}: {result.Calls} calls in {result.Seconds:0.00} s, {result.Failed} failed; per call p50 {result.P50Ms:0.###} ms, p90 {result.P90Ms:0.###} ms, p99 {result.P99Ms:0.###} ms, max {result.MaxMs:0.###} ms");
            if (result.BadKey is { } flood)
            {
                AnsiConsole.MarkupLineInterpolated(
                    $"wrong-key flood alongside: {flood.Sent} requests answered ({flood.PerSecond:N0}/s): {flood.Unauthorized} x 401, {flood.Throttled} x 429, {flood.Other} other");
            }
        }

        return result.Failed == 0 ? LensApp.Ok : LensApp.Failure;
    }

    private static async Task<BenchResult> RunAsync(BenchSettings settings, string transport, BucketSet buckets,
        Func<int[], int[], Task>[] calls, string[] names, CancellationToken ct)
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

        // First one call per target, in order, so that one that does not answer is named; then the rest of the warm-up by every
        // client at once through its own target, as in the timed run: each opens its connection before the clock starts.
        var warmup = settings.Warmup == 0 ? 0 : Math.Max(settings.Warmup, calls.Length);
        for (var n = 0; n < Math.Min(warmup, calls.Length); n++)
        {
            try
            {
                await calls[n](inputs[n % Pool], outputs[n % Pool]);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                throw new CliException($"warm-up call {n + 1} to {names[n]} failed: {ex.Message}");
            }
        }

        long warmed = calls.Length - 1;
        await Task.WhenAll(Enumerable.Range(0, settings.Clients).Select(c => Task.Run(async () =>
        {
            long n;
            while ((n = Interlocked.Increment(ref warmed)) < warmup)
            {
                try
                {
                    await calls[c % calls.Length](inputs[n % Pool], outputs[n % Pool]);
                }
                catch (Exception ex) when (!ct.IsCancellationRequested)
                {
                    throw new CliException($"warm-up call {n + 1} to {names[c % calls.Length]} failed: {ex.Message}");
                }
            }
        }, CancellationToken.None)));

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(settings.MaxSeconds));
        using var floodStop = new CancellationTokenSource();
        var flood = settings.BadKeyRate is { } rate ? Task.Run(() => FloodAsync(settings, rate, floodStop.Token), CancellationToken.None) : null;
        var latencies = new double[settings.Requests];
        long next = -1, failed = 0, done = 0;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, settings.Clients).Select(c => Task.Run(async () =>
        {
            var call = calls[c % calls.Length];
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
        await floodStop.CancelAsync();
        var badKey = flood is null ? null : await flood;
        var sorted = latencies.Take((int)done).Order().ToArray();
        double Q(double q) => sorted.Length == 0 ? double.NaN : RepeatStatistic.QuantileOfSorted(sorted, q);
        return new BenchResult(transport, transport == "http" && settings.Batch > 1 ? settings.BatchFormat : null, calls.Length, settings.Clients, settings.Batch, done, failed, seconds, done / seconds, done * settings.Batch / seconds,
            Q(0.5), Q(0.9), Q(0.99), sorted.Length == 0 ? double.NaN : sorted[^1], badKey);
    }

    /// <summary>
    /// Sends requests with a wrong API key at about <paramref name="rate"/> per second (open loop: paced by the clock, not by the
    /// answers; at most 64 in flight, a tick with all in use sends nothing) until stopped; counts the answers.
    /// </summary>
    private static async Task<BadKeyFlood> FloodAsync(BenchSettings settings, double rate, CancellationToken stop)
    {
        const int MaxInFlight = 64;
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = MaxInFlight }) { BaseAddress = new Uri(settings.ServerUrls[0]) };
        http.DefaultRequestHeaders.Add("X-Api-Key", "lens-bench-wrong-key");
        var path = $"v1/devices/{Uri.EscapeDataString(settings.Device!)}/deployments/{Uri.EscapeDataString(settings.Deployment!)}";
        long sent = 0, unauthorized = 0, throttled = 0, other = 0;
        using var slots = new SemaphoreSlim(MaxInFlight);
        var clock = Stopwatch.StartNew();
        async Task OneAsync()
        {
            try
            {
                using var response = await http.GetAsync(path, CancellationToken.None);
                _ = response.StatusCode switch
                {
                    System.Net.HttpStatusCode.Unauthorized => Interlocked.Increment(ref unauthorized),
                    System.Net.HttpStatusCode.TooManyRequests => Interlocked.Increment(ref throttled),
                    _ => Interlocked.Increment(ref other),
                };
            }
            catch (HttpRequestException)
            {
                Interlocked.Increment(ref other);
            }
            finally
            {
                slots.Release();
            }
        }

        var pending = new List<Task>();
        while (!stop.IsCancellationRequested)
        {
            var due = (long)(clock.Elapsed.TotalSeconds * rate);
            while (sent < due && slots.Wait(0))
            {
                sent++;
                pending.Add(OneAsync());
            }

            sent = Math.Max(sent, due); // requests a full window could not send are skipped, not sent late in a burst
            pending.RemoveAll(t => t.IsCompleted);
            try
            {
                await Task.Delay(1, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        await Task.WhenAll(pending);
        var answered = unauthorized + throttled + other;
        return new BadKeyFlood(answered, answered / clock.Elapsed.TotalSeconds, unauthorized, throttled, other);
    }

    private static async Task<IHost> StartOrleansClientAsync(BenchSettings settings, int port, CancellationToken ct)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(client => client.UseStaticClustering(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port))
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
