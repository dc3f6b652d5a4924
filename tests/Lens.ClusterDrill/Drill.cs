using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Polly;

namespace Lens.ClusterDrill;

/// <summary>Settings of one drill.</summary>
public sealed record DrillOptions
{
    /// <summary>The built lens.dll; by default src/Lens.Cli's build output of this program's configuration.</summary>
    public string LensDll { get; init; } = FindLensDll();

    /// <summary>Azure Storage connection string every silo uses (Azurite by default).</summary>
    public string ConnectionString { get; init; } = "UseDevelopmentStorage=true";

    public int Silos { get; init; } = 3;

    /// <summary>Most HTTP requests of the load (predictions, and every tenth an import of one measurement).</summary>
    public int MaxRequests { get; init; } = 3000;

    /// <summary>Requests in flight at once.</summary>
    public int Concurrency { get; init; } = 4;

    /// <summary>Pause of each load worker between its requests: keeps the load bounded while the cluster recovers.</summary>
    public TimeSpan Pace { get; init; } = TimeSpan.FromMilliseconds(40);

    /// <summary>Load requests served before the kill.</summary>
    public int RequestsBeforeKill { get; init; } = 150;

    /// <summary>The load goes on at least this long after the kill (the cluster detects the dead silo meanwhile).</summary>
    public TimeSpan LoadAfterKill { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Devices profiled while the silo is killed (each its own device grain, spread over the silos).</summary>
    public int ProfilingDevices { get; init; } = 3;

    /// <summary>Repeats of each profiled plan: more rows make the profile last longer than the moment of the kill.</summary>
    public int ProfileRepeats { get; init; } = 40;

    /// <summary>Whether to kill a silo at all (false: a plain three-silo load, for comparison).</summary>
    public bool Kill { get; init; } = true;

    /// <summary>Longest wait for a recovery step (profiles completing, silos starting).</summary>
    public TimeSpan Patience { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>Where silo logs (and the file of child process ids) go; a new temporary folder when null.</summary>
    public string? WorkDirectory { get; init; }

    public Action<string> Log { get; init; } = Console.Error.WriteLine;

    /// <summary>
    /// src/Lens.Cli/bin/{configuration}/net10.0/lens.dll above this program. (A copy beside it would run with this program's
    /// resolution of shared packages, not lens's own.)
    /// </summary>
    public static string FindLensDll()
    {
#if DEBUG
        const string Configuration = "Debug";
#else
        const string Configuration = "Release";
#endif
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "src", "Lens.Cli", "bin", Configuration, "net10.0", "lens.dll");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return Path.Combine(AppContext.BaseDirectory, "lens.dll");
    }
}

/// <summary>What the drill saw. <see cref="Problems"/> lists every property that did not hold; empty means the drill passed.</summary>
public sealed record DrillReport
{
    public int Silos { get; init; }
    public int ActiveSilosAtStart { get; init; }
    public int ActiveSilosAtEnd { get; init; }
    public bool[] EverySiloServedDirectly { get; init; } = [];
    public int Requests { get; init; }
    public int Served { get; init; }
    public int Failed { get; init; }
    public int Retried { get; init; }
    public int FailedAttempts { get; init; }
    public int UnreachableAttempts { get; init; }
    public int ServerErrorAttempts { get; init; }
    public int TimedOutAttempts { get; init; }
    public int Predictions { get; init; }
    public int Imports { get; init; }
    public int[] ServedBySilo { get; init; } = [];
    public int? KilledSilo { get; init; }
    public int RequestsBeforeKill { get; init; }
    public int ProfilesOnKilledSilo { get; init; }
    public int ProfileRowsDoneAtKill { get; init; }
    public int ProfilesUnfinishedAtKill { get; init; }

    /// <summary>Of <see cref="ProfileRowsDoneAtKill"/>, the rows found stored after recovery, in the same (resumed, not restarted) run.</summary>
    public int ProfileRowsDoneAtKillKept { get; init; }
    public int MeasurementsBeforeKill { get; init; }
    public int MeasurementsAfter { get; init; }
    public int ProfileRowsExpected { get; init; }
    public int ProfileRowsStored { get; init; }
    public int ProfileRowsLost { get; init; }
    public int ProfileRowsDuplicated { get; init; }
    public int ImportsExpected { get; init; }
    public int ImportsStored { get; init; }
    public double SecondsToRecover { get; init; }
    public string WorkDirectory { get; init; } = "";
    public int[] SiloPids { get; init; } = [];
    public List<string> Problems { get; init; } = [];
    public bool Passed => Problems.Count == 0;
}

/// <summary>
/// The fault drill: starts <see cref="DrillOptions.Silos"/> real <c>lens serve</c> processes (Azure Table clustering and storage,
/// one cluster on unique tables), profiles a replayed deployment, runs a bounded prediction load over HTTP against every silo with
/// client-side retry, starts profiles on several devices, SIGKILLs the silo that hosts the most of them mid-load and mid-profile,
/// and checks: the cluster formed, every silo served, no request failed after retry, every profile completed with each planned
/// measurement stored exactly once, every imported measurement stored. Stops everything it started.
/// </summary>
public static class Drill
{
    public const string ApiKey = "drill-key-0123456789abcdef";
    private const string Device = "npu-steady";
    private static readonly int[] Prefill = [128, 256, 512];
    private static readonly int[] Decode = [128, 256, 512, 1024];

    public static async Task<DrillReport> RunAsync(DrillOptions options, CancellationToken cancellationToken = default)
    {
        if (!File.Exists(options.LensDll))
        {
            throw new FileNotFoundException($"lens.dll not found at {options.LensDll} (build src/Lens.Cli)", options.LensDll);
        }

        var work = options.WorkDirectory ?? Directory.CreateTempSubdirectory("lens-drill-").FullName;
        Directory.CreateDirectory(work);
        var log = options.Log;
        var run = Guid.NewGuid().ToString("N")[..10];
        var clusterId = "drill-" + run;
        var serviceId = "lens-drill-" + run;
        var environment = new Dictionary<string, string>
        {
            ["LENS_DRILL_STORAGE"] = options.ConnectionString,
            ["LENS_DRILL_KEY"] = ApiKey,
            ["Lens__ClusterId"] = clusterId,
            ["Lens__ServiceId"] = serviceId,
            ["Lens__TablePrefix"] = "drill" + run,
            ["Lens__Grains__ResumeCheckPeriod"] = "00:00:02",
            ["Lens__Grains__InitialBackoff"] = "00:00:00.050",
            ["DOTNET_gcServer"] = "0",
            ["DOTNET_NOLOGO"] = "1",
        };

        var silos = new List<SiloProcess>();
        var pidFile = Path.Combine(work, "pids");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        IHost? orleans = null;
        try
        {
            // 1. Three silos, one cluster.
            for (var i = 0; i < options.Silos; i++)
            {
                silos.Add(SiloProcess.Start(i, options.LensDll, work, environment, "LENS_DRILL_KEY", "LENS_DRILL_STORAGE"));
                await File.WriteAllLinesAsync(pidFile, silos.Select(s => s.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                    cancellationToken);
            }

            foreach (var silo in silos)
            {
                await silo.WaitHealthyAsync(http, options.Patience, cancellationToken);
                log($"silo {silo.Index}: pid {silo.Pid}, HTTP {silo.HttpPort}, silo port {silo.SiloPort}, gateway {silo.GatewayPort}");
            }

            orleans = await ConnectAsync(silos, clusterId, serviceId, cancellationToken);
            var management = orleans.Services.GetRequiredService<IClusterClient>().GetGrain<IManagementGrain>(0);
            var activeAtStart = await ActiveSilosAsync(management, options.Silos, options.Patience, cancellationToken);
            log($"cluster: {activeAtStart} active silos");

            // The drill's own client moves a failed call to the next silo; the client's retry (same silo) would only slow that down.
            var clients = silos.Select(s => new LensHttpClient(new HttpClient { BaseAddress = s.HttpAddress, Timeout = TimeSpan.FromSeconds(30) }, ApiKey)
                {
                    Retry = ResiliencePipeline<HttpResponseMessage>.Empty,
                })
                .ToArray();
            var retrying = new RetryingClient(clients);

            // 2. A steady deployment, profiled before the load; every silo answers a prediction on it directly.
            var steady = (await retrying.RunAsync(c => c.CreateDeploymentAsync(Device, Spec("steady", 2)), cancellationToken)).Value.Id;
            await retrying.RunAsync(c => c.StartProfileAsync(Device, steady), cancellationToken);
            await WaitProfileAsync(retrying, Device, steady, options.Patience, cancellationToken);
            var served = new bool[silos.Count];
            for (var i = 0; i < silos.Count; i++)
            {
                var p = await clients[i].PredictAsync(Device, steady, 300, 200, cancellationToken);
                served[i] = p.E2eMs > 0;
            }

            log($"steady deployment {steady} profiled; direct predictions from silos: {string.Join(", ", served)}");

            // 3. The load, against every silo in turn, with client-side retry.
            var load = new Load(retrying, Device, steady, options);
            using var stopLoad = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var loadTask = load.RunAsync(stopLoad.Token);
            await Until(() => Task.FromResult(load.Served >= options.RequestsBeforeKill || loadTask.IsCompleted), "the load's first requests",
                options.Patience, cancellationToken);

            // 4. Profiles on several devices; the silo hosting the most of their device grains is the victim.
            var profiled = new List<(string Device, string Id)>();
            for (var d = 0; d < options.ProfilingDevices; d++)
            {
                var device = $"npu-drill-{d}";
                var id = (await retrying.RunAsync(c => c.CreateDeploymentAsync(device, Spec("drill", options.ProfileRepeats)), cancellationToken)).Value.Id;
                profiled.Add((device, id));
            }

            foreach (var (device, id) in profiled)
            {
                await retrying.RunAsync(c => c.StartProfileAsync(device, id), cancellationToken);
            }

            var grains = orleans.Services.GetRequiredService<IClusterClient>();
            int? victim = null;
            var onVictim = new List<(string Device, string Id)>();
            var doneAtKill = 0;
            var unfinishedAtKill = 0;
            var atKill = new List<(string Device, string Id, string? RunId, int Done)>();
            var measurementsBefore = 0;
            var requestsBeforeKill = 0;
            var killedAt = Stopwatch.StartNew();
            if (options.Kill)
            {
                var hosts = new Dictionary<int, List<(string, string)>>();
                foreach (var p in profiled)
                {
                    var address = await management.GetActivationAddress(grains.GetGrain<IDeviceGrain>(new DeviceKey("acme", p.Device).Format()));
                    var host = silos.FindIndex(s => address is not null && address.Endpoint.Port == s.SiloPort);
                    if (host >= 0)
                    {
                        (hosts.TryGetValue(host, out var list) ? list : hosts[host] = []).Add(p);
                    }
                }

                if (hosts.Count == 0)
                {
                    throw new InvalidOperationException("no profiled device grain has an activation on a drill silo");
                }

                var chosen = hosts.MaxBy(h => h.Value.Count);
                victim = chosen.Key;
                onVictim = chosen.Value;
                log($"device grains by silo: {string.Join("; ", hosts.Select(h => $"silo {h.Key}: {string.Join(", ", h.Value.Select(v => v.Item1))}"))}");

                // Wait until the victim's profiles are under way (some rows stored, not finished), then kill it.
                await Until(async () =>
                {
                    var progress = await Task.WhenAll(onVictim.Select(v => retrying.RunAsync(c => c.GetProfileProgressAsync(v.Device, v.Id), cancellationToken)));
                    return progress.All(p => p.Value.Done >= 3 || p.Value.IsFinished);
                }, "the victim's profiles to start", options.Patience, cancellationToken);

                foreach (var v in onVictim)
                {
                    var progress = (await retrying.RunAsync(c => c.GetProfileProgressAsync(v.Device, v.Id), cancellationToken)).Value;
                    doneAtKill += progress.Done;
                    atKill.Add((v.Device, v.Id, progress.RunId, progress.Done));
                    unfinishedAtKill += progress.IsFinished ? 0 : 1;
                }

                measurementsBefore = await CountMeasurementsAsync(retrying, [(Device, steady), .. profiled], cancellationToken);
                requestsBeforeKill = load.Issued;
                silos[victim.Value].Kill();
                killedAt.Restart();
                log($"SIGKILL silo {victim} (pid {silos[victim.Value].Pid}) after {requestsBeforeKill} requests; its profiles had {doneAtKill} rows done; " +
                    $"{measurementsBefore} measurements stored");
            }

            // 5. Recovery: every profile completes; the load goes on meanwhile and a while after.
            foreach (var (device, id) in profiled)
            {
                await WaitProfileAsync(retrying, device, id, options.Patience, cancellationToken);
            }

            var recovered = killedAt.Elapsed;
            log($"every profile completed {recovered.TotalSeconds:0.0} s after the kill");
            var rest = options.LoadAfterKill - killedAt.Elapsed;
            if (rest > TimeSpan.Zero && !loadTask.IsCompleted)
            {
                await Task.WhenAny(loadTask, Task.Delay(rest, cancellationToken));
            }

            await stopLoad.CancelAsync();
            await loadTask;

            // 6. Checks.
            var report = await CheckAsync(retrying, profiled, steady, load, cancellationToken);
            var activeAtEnd = await ActiveSilosNowAsync(management);

            // The rows the killed silo's profiles had stored before the kill are all still there, in the run that resumed.
            var kept = 0;
            foreach (var (device, id, runId, done) in atKill)
            {
                var final = (await retrying.RunAsync(c => c.GetProfileProgressAsync(device, id), cancellationToken)).Value;
                if (final.RunId != runId)
                {
                    report.Problems.Add($"profile of {device} restarted as run {final.RunId} instead of resuming run {runId}");
                    continue;
                }

                var ids = (await MeasurementIdsAsync(retrying, device, id, cancellationToken)).ToHashSet(StringComparer.Ordinal);
                kept += Enumerable.Range(0, done).Count(i => ids.Contains($"{runId}:{i}"));
            }

            if (kept != doneAtKill)
            {
                report.Problems.Add($"of {doneAtKill} profile rows stored before the kill, {kept} are stored after recovery");
            }
            report = report with
            {
                Silos = options.Silos,
                ActiveSilosAtStart = activeAtStart,
                ActiveSilosAtEnd = activeAtEnd,
                EverySiloServedDirectly = served,
                KilledSilo = victim,
                RequestsBeforeKill = requestsBeforeKill,
                ProfilesOnKilledSilo = onVictim.Count,
                ProfileRowsDoneAtKill = doneAtKill,
                ProfilesUnfinishedAtKill = unfinishedAtKill,
                ProfileRowsDoneAtKillKept = kept,
                MeasurementsBeforeKill = measurementsBefore,
                SecondsToRecover = Math.Round(recovered.TotalSeconds, 1),
                WorkDirectory = work,
                SiloPids = [.. silos.Select(s => s.Pid)],
            };
            if (activeAtStart != options.Silos)
            {
                report.Problems.Add($"the cluster had {activeAtStart} active silos at start, not {options.Silos}");
            }

            if (options.Kill && unfinishedAtKill == 0)
            {
                report.Problems.Add("no profile on the killed silo was still running at the kill (raise --repeats)");
            }

            if (!served.All(s => s))
            {
                report.Problems.Add($"not every silo served a prediction directly: {string.Join(", ", served)}");
            }

            if (options.Kill && report.MeasurementsAfter < measurementsBefore)
            {
                report.Problems.Add($"{measurementsBefore} measurements before the kill, only {report.MeasurementsAfter} after");
            }

            return report;
        }
        finally
        {
            if (orleans is not null)
            {
                try
                {
                    using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    await orleans.StopAsync(quick.Token);
                }
                catch (Exception)
                {
                    // cleanup only: a gateway gone leaves nothing to stop gracefully, and must not hide the drill's own outcome
                }

                orleans.Dispose();
            }

            await Task.WhenAll(silos.Select(s => s.DisposeAsync().AsTask()));
            File.Delete(pidFile);
        }
    }

    /// <summary>A fitted deployment to replay (hand-picked costs), with <paramref name="repeats"/> repeats per planned point.</summary>
    public static DeploymentSpec Spec(string name, int repeats)
    {
        double[] a = [20, 35, 60];
        double[] s = [5, 5.5, 6.25, 7.5];
        var model = new DeploymentModel(new BucketSet(Prefill, Decode),
            [.. Prefill.Select((p, i) => new PrefillValues(p, a[i], 0, a[i], 0, double.NaN))],
            [.. Decode.Select((d, j) => new DecodeValues(d, s[j], 0))], RepeatStatistic.Min, 0);
        return new DeploymentSpec(name, "llama-3.1-8b", Prefill, Decode,
            new BackendSpec(BackendSpec.Replay, ModelJson: ModelJson.Serialize(model), Noise: 0.01), SdkVersion: "2.19", Dtype: "bf16",
            Repeats: repeats);
    }

    private static async Task<IHost> ConnectAsync(List<SiloProcess> silos, string clusterId, string serviceId, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleansClient(client =>
        {
            client.UseStaticClustering([.. silos.Select(s => new IPEndPoint(IPAddress.Loopback, s.GatewayPort))]);
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = clusterId;
                o.ServiceId = serviceId;
            });
        });
        var host = builder.Build();
        await host.StartAsync(cancellationToken);
        return host;
    }

    private static async Task<int> ActiveSilosAsync(IManagementGrain management, int expected, TimeSpan patience, CancellationToken cancellationToken)
    {
        var active = 0;
        await Until(async () => (active = (await management.GetHosts(onlyActive: true)).Count) >= expected, $"{expected} active silos", patience,
            cancellationToken);
        return active;
    }

    /// <summary>Active silos as the membership now says; -1 when no gateway answers (the figure is reported, not checked).</summary>
    private static async Task<int> ActiveSilosNowAsync(IManagementGrain management)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                return (await management.GetHosts(onlyActive: true)).Count;
            }
            catch (Exception ex) when (ex is Orleans.Runtime.OrleansException or TimeoutException)
            {
                await Task.Delay(500);
            }
        }

        return -1;
    }

    private static async Task WaitProfileAsync(RetryingClient lens, string device, string id, TimeSpan patience, CancellationToken cancellationToken)
    {
        ProfileProgress? last = null;
        try
        {
            await Until(async () =>
            {
                last = (await lens.RunAsync(c => c.GetProfileProgressAsync(device, id), cancellationToken)).Value;
                return last.IsFinished;
            }, $"the profile of {device}/{id}", patience, cancellationToken);
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"{ex.Message}; last progress: {last}", ex);
        }
    }

    private static async Task<int> CountMeasurementsAsync(RetryingClient lens, IEnumerable<(string Device, string Id)> deployments,
        CancellationToken cancellationToken)
    {
        var total = 0;
        foreach (var (device, id) in deployments)
        {
            var buckets = (await lens.RunAsync(c => c.GetBucketsAsync(device, id), cancellationToken)).Value;
            total += buckets.Sum(b => b.MeasurementCount + b.PendingCount); // pending: stored rows of a profile still running
        }

        return total;
    }

    private static async Task<DrillReport> CheckAsync(RetryingClient lens, List<(string Device, string Id)> profiled, string steady, Load load,
        CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        int expectedRows = 0, storedRows = 0, lost = 0, duplicated = 0;
        foreach (var (device, id) in profiled)
        {
            var progress = (await lens.RunAsync(c => c.GetProfileProgressAsync(device, id), cancellationToken)).Value;
            if (progress.State != ProfileState.Completed || progress.Done != progress.Total)
            {
                problems.Add($"profile of {device}: {progress.State}, {progress.Done}/{progress.Total}, last error {progress.LastError}");
            }

            var ids = await MeasurementIdsAsync(lens, device, id, cancellationToken);
            var expected = Enumerable.Range(0, progress.Total).Select(i => $"{progress.RunId}:{i}").ToHashSet(StringComparer.Ordinal);
            expectedRows += expected.Count;
            storedRows += ids.Count;
            var missing = expected.Count(e => !ids.Contains(e));
            lost += missing;
            duplicated += ids.Count - ids.Distinct(StringComparer.Ordinal).Count();
            if (missing > 0)
            {
                problems.Add($"profile of {device}: {missing} of {expected.Count} planned measurements are not stored");
            }
        }

        if (duplicated > 0)
        {
            problems.Add($"{duplicated} profile measurements are stored twice");
        }

        var steadyIds = (await MeasurementIdsAsync(lens, Device, steady, cancellationToken)).ToHashSet(StringComparer.Ordinal);
        var imports = load.ImportIds.ToArray();
        var importsStored = imports.Count(steadyIds.Contains);
        if (importsStored != imports.Length)
        {
            problems.Add($"{imports.Length - importsStored} of {imports.Length} imported measurements are not stored");
        }

        if (load.Failed > 0)
        {
            problems.Add($"{load.Failed} requests failed after client retry: {string.Join(" | ", load.Errors.Take(3))}");
        }

        var after = await CountMeasurementsAsync(lens, [(Device, steady), .. profiled], cancellationToken);
        return new DrillReport
        {
            Requests = load.Issued,
            Served = load.Served,
            Failed = load.Failed,
            Retried = load.Retried,
            FailedAttempts = load.FailedAttempts,
            UnreachableAttempts = load.Unreachable,
            ServerErrorAttempts = load.ServerErrors,
            TimedOutAttempts = load.Timeouts,
            Predictions = load.Predictions,
            Imports = load.Imports,
            ServedBySilo = load.ServedBySilo,
            MeasurementsAfter = after,
            ProfileRowsExpected = expectedRows,
            ProfileRowsStored = storedRows,
            ProfileRowsLost = lost,
            ProfileRowsDuplicated = duplicated,
            ImportsExpected = imports.Length,
            ImportsStored = importsStored,
            Problems = problems,
        };
    }

    private static async Task<List<string>> MeasurementIdsAsync(RetryingClient lens, string device, string id, CancellationToken cancellationToken)
    {
        var ids = new List<string>();
        foreach (var bucket in (await lens.RunAsync(c => c.GetDeploymentAsync(device, id), cancellationToken)).Value.Buckets)
        {
            ids.AddRange((await lens.RunAsync(c => c.GetBucketMeasurementsAsync(device, id, bucket), cancellationToken)).Value.Select(m => m.Id));
        }

        return ids;
    }

    private static async Task Until(Func<Task<bool>> probe, string what, TimeSpan patience, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < patience)
        {
            if (await probe())
            {
                return;
            }

            await Task.Delay(100, cancellationToken);
        }

        throw new TimeoutException($"waited {patience.TotalSeconds:0} s for {what}");
    }

    /// <summary>The bounded load: predictions over the whole length range, every tenth request an import with a fixed batch id.</summary>
    private sealed class Load(RetryingClient lens, string device, string deployment, DrillOptions options)
    {
        private int _issued;
        private int _served;
        private int _failed;
        private int _retried;
        private int _failedAttempts;
        private int _unreachable;
        private int _serverErrors;
        private int _timeouts;
        private int _predictions;
        private int _imports;

        public int Issued => Volatile.Read(ref _issued);
        public int Served => Volatile.Read(ref _served);
        public int Failed => Volatile.Read(ref _failed);
        public int Retried => Volatile.Read(ref _retried);
        public int FailedAttempts => Volatile.Read(ref _failedAttempts);
        public int Unreachable => Volatile.Read(ref _unreachable);
        public int ServerErrors => Volatile.Read(ref _serverErrors);
        public int Timeouts => Volatile.Read(ref _timeouts);
        public int Predictions => Volatile.Read(ref _predictions);
        public int Imports => Volatile.Read(ref _imports);
        private readonly int[] _servedBySilo = new int[options.Silos];

        /// <summary>Load requests answered by each silo (the attempt that succeeded).</summary>
        public int[] ServedBySilo => [.. _servedBySilo];
        public ConcurrentBag<string> ImportIds { get; } = [];
        public ConcurrentQueue<string> Errors { get; } = new();

        public Task RunAsync(CancellationToken stop) => Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(w => WorkerAsync(w, stop)));

        private async Task WorkerAsync(int worker, CancellationToken stop)
        {
            var random = new Random(worker);
            while (!stop.IsCancellationRequested)
            {
                var n = Interlocked.Increment(ref _issued) - 1;
                if (n >= options.MaxRequests)
                {
                    Interlocked.Decrement(ref _issued);
                    return;
                }

                var input = random.Next(1, 513);
                var output = random.Next(1, 1025 - input);
                try
                {
                    // Once issued, a request is seen through (retried up to its deadline) even when the load is told to stop.
                    RetryResult result;
                    if (n % 10 == 0)
                    {
                        var batchId = $"drill-{n}";
                        var e2e = 20 + (6 * output);
                        result = await lens.RunAsync(c => c.ImportMeasurementsAsync(device, deployment,
                            new MeasurementBatch([new MeasurementInput(input, output, e2e)], batchId)), CancellationToken.None);
                        ImportIds.Add(batchId + ":0");
                        Interlocked.Increment(ref _imports);
                    }
                    else
                    {
                        result = await lens.RunAsync(c => c.PredictAsync(device, deployment, input, output), CancellationToken.None);
                        Interlocked.Increment(ref _predictions);
                    }

                    Interlocked.Increment(ref _served);
                    Interlocked.Increment(ref _servedBySilo[result.Silo]);
                    Interlocked.Add(ref _failedAttempts, result.FailedAttempts);
                    Interlocked.Add(ref _unreachable, result.Unreachable);
                    Interlocked.Add(ref _serverErrors, result.ServerErrors);
                    Interlocked.Add(ref _timeouts, result.Timeouts);
                    if (result.FailedAttempts > 0)
                    {
                        Interlocked.Increment(ref _retried);
                    }
                }
                catch (Exception ex) when (ex is LensApiException or HttpRequestException or TimeoutException or TaskCanceledException)
                {
                    Interlocked.Increment(ref _failed);
                    Errors.Enqueue(ex.Message);
                }

                try
                {
                    await Task.Delay(options.Pace, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}
