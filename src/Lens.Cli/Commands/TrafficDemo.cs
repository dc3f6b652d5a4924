using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Measurement;
using Lens.Silo;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Lens.Cli.Commands;

/// <summary>
/// <c>lens demo --traffic</c> (issue 19's "done when"): the batched reference engine behind its OpenAI-compatible server, profiled in
/// groups and fitted; a LENS service (silo and HTTP API on loopback, two tenants) holding that profile as a deployment; Poisson
/// traffic at a fraction of the fitted model's sustainable rate replayed against the engine, each finished request reported as an
/// <c>llm_request</c> span by the standard OpenTelemetry exporter with tenant A's key. Four phases, each a run of windows:
/// <list type="number">
/// <item>steady: nothing changed; no cell may be flagged, neither in the <c>--baseline-windows</c> that learn each cell's traffic
/// baseline (judged against the profile) nor in the <c>--steady-windows</c> after them (judged against that baseline);</item>
/// <item>one cell: the (batch, length) decode cell of batch above 1 that the last steady window ran most steps of is slowed by
/// <c>--cell-slowdown</c> through the engine's hook; it, and only it, must be flagged within <c>--cell-windows</c> windows, and its
/// cost estimated from the traffic must be within 10% of its cost re-profiled with the slowdown on;</item>
/// <item>every cell slowed by <c>--all-slowdown</c>: the common shift must report it (within 10% of the slowdown as a cost ratio)
/// and no cell may be out of band;</item>
/// <item>tenant B's exporter names tenant A's deployment: A must receive nothing, and B must not see A's report.</item>
/// </list>
/// </summary>
internal static class TrafficDemo
{
    public const string DefaultProfile = "nxdi-small-batch";

    /// <summary>Tolerance of the estimates: the cell's re-estimated cost and the common shift, relative to what they estimate.</summary>
    public const double Tolerance = 0.10;

    private const string Device = "reference-npu";
    private const string KeyA = "tenant-a-key-0123456789abcdef", KeyB = "tenant-b-key-0123456789abcdef";

    public static async Task<int> RunAsync(DemoSettings settings, RepeatStatistic statistic, IAnsiConsole ui, CancellationToken ct)
    {
        var outDir = settings.OutputFolder;
        var input = LengthDistribution.Parse(settings.Input, "--input");
        var output = LengthDistribution.Parse(settings.Output, "--output");
        await using var engine = await EngineHost.StartAsync(settings.EngineProfile, direct: false, ct);
        var backend = engine.Http!;
        var buckets = engine.ServingBuckets;
        ui.MarkupLineInterpolated($"[bold]LENS traffic demo[/] on {engine.Describe}: {buckets}, max_num_seqs {buckets.MaxBatch}");

        // 1. Profile in groups and fit, as the serving demo does.
        var plan = ProfilingPlanner.Create(buckets, new PlanOptions(1, null, settings.Seed));
        var profilePath = Path.Combine(outDir, "profile.csv");
        File.Delete(profilePath);
        for (var round = 1; round <= settings.Repeats; round++)
        {
            await engine.ProfileRoundAsync(plan.Rows, profilePath, round, warmUp: true, $"profiling, round {round} of {settings.Repeats}", ui, ct);
        }

        var profiled = CliFiles.ReadMeasurements(profilePath, "profile").Rows;

        // 2. The service, with the profile imported into tenant A's deployment (the service fits it).
        await using var lens = await StartServiceAsync(settings.Window, settings.BaselineWindows, ct);
        using var http = new HttpClient { BaseAddress = lens.HttpAddress, Timeout = TimeSpan.FromMinutes(2) };
        var a = new LensHttpClient(http, KeyA);
        var b = new LensHttpClient(http, KeyB);
        var spec = new DeploymentSpec("traffic", engine.ModelName, [.. buckets.Prefill], [.. buckets.Decode],
            new BackendSpec(BackendSpec.Reference, EngineProfile: engine.ModelName),
            buckets.Convention == DecodeConvention.AfterAppend ? Conventions.AfterAppend : Conventions.BeforeAppend,
            Statistic: statistic.ToString(), Repeats: settings.Repeats, BatchBuckets: [.. buckets.Batch]);
        var id = (await a.CreateDeploymentAsync(Device, spec, ct)).Id;
        await a.ImportMeasurementsAsync(Device, id, new MeasurementBatch([.. profiled.Select(ToInput)], "profile"), ct);
        var model = ModelJson.Deserialize(await a.GetModelJsonAsync(Device, id, ct), "the service's model");
        CliFiles.WriteAtomically(Path.Combine(outDir, "model.json"), w => w.Write(ModelJson.Serialize(model)));

        // 3. The traffic: Poisson at --load of the fitted model's sustainable rate for the mix.
        var workload = new Workload
        {
            RequestsPerSecond = 1, Count = ServingDemo.SimulatedRequests, Seed = settings.Seed, InputDist = input.Text, OutputDist = output.Text,
        };
        var capacity = ServingComparison.SaturatedRequestsPerSecond(model, workload.Generate(buckets).Requests);
        var rate = settings.Load * capacity;
        ui.MarkupLineInterpolated(
            $"Service at {lens.HttpAddress}: deployment {id} fitted from {profiled.Count} measurements; sustainable {capacity:0.0} requests/s, traffic at {settings.Load:0.##} x = {rate:0.0}/s, windows of {settings.Window}.");

        using var spans = new TrafficSpans(lens.HttpAddress, KeyA, Device, id, 2 * settings.Window);
        var windows = new List<TrafficDemoWindow>();
        async Task<TrafficDemoWindow> WindowAsync(string phase)
        {
            var n = windows.Count;
            var trace = (workload with { RequestsPerSecond = rate, Count = settings.Window, Seed = settings.Seed + 1 + n }).Generate(buckets).Requests;
            var start = DateTimeOffset.UtcNow;
            var replay = await LoadReplay.RunAsync(backend, trace, new LoadReplayOptions(), ct);
            if (replay.Summary.Failed > 0)
            {
                throw new CliException($"{replay.Summary.Failed} of {trace.Count} requests of window {n + 1} failed: " +
                                       replay.Requests.First(r => r.Failed).Error);
            }

            // Each window as 'lens replay' writes it: 'lens monitor --model model.json --observed window-N.csv' analyses it offline.
            CliFiles.WriteAtomically(Path.Combine(outDir, $"window-{n + 1}.csv"), w => LoadReplay.Write(w, replay.Requests));
            spans.Record(start, replay.Requests);
            if (!spans.Flush())
            {
                throw new CliException($"the OpenTelemetry exporter did not deliver window {n + 1} in time");
            }

            // The exporter's flush returns once its queue is drained, which it counts while it serializes the last batch: the export
            // may still be on the wire. So the window counts as delivered when the service says so (bounded wait).
            var expected = (long)(n + 1) * settings.Window;
            var status = await a.GetTrafficAsync(Device, id, ct);
            for (var poll = 0; poll < 600 && status.Analyses < n + 1 && status.Received < expected; poll++)
            {
                await Task.Delay(100, ct);
                status = await a.GetTrafficAsync(Device, id, ct);
            }

            if (status.Analyses != n + 1 || status.Latest is not { } latest)
            {
                throw new CliException($"window {n + 1} was not analysed ({status.Analyses} analyses, {status.Received} requests received of " +
                                       $"{expected} sent): " + (status.LastError ?? (status.Received < expected
                                           ? "spans the exporter had flushed did not arrive within 60 s (an export lost); the exporter said: " +
                                             (spans.Problems.Count > 0 ? string.Join(" | ", spans.Problems) : "nothing")
                                           : "no error reported")));
            }

            var window = new TrafficDemoWindow(n + 1, phase, replay.Summary.Requests, replay.Summary.E2e.P50, latest.TtftMape, latest.E2eMape,
                latest.CommonShift, status.Flagged, [.. latest.Cells.Where(c => c.OutOfBand).Select(c => c.Cell)], latest.Cells, latest.Disturbed);
            windows.Add(window);
            ui.MarkupLineInterpolated(
                $"window {window.Index,3} {phase,-6} E2E MAPE {latest.E2eMape ?? double.NaN,5:0.0}%  common shift {latest.CommonShift,6:+0.000;-0.000}{(latest.Disturbed ? " (machine disturbed: no cell judged)" : "")}  out of band [[{string.Join(' ', window.OutOfBand)}]]  flagged [[{string.Join(' ', window.Flagged)}]]");
            return window;
        }

        for (var w = 0; w < settings.BaselineWindows; w++)
        {
            await WindowAsync("learn");
        }

        for (var w = 0; w < settings.SteadyWindows; w++)
        {
            await WindowAsync("steady");
        }

        var steady = windows.ToArray();
        var cell = steady[^1].Cells
            .Select(c => (Cell: BucketId.Parse(c.Cell), c.Steps))
            .Where(c => c.Cell.Kind == BucketKind.Decode && c.Cell.Batch > 1)
            .OrderByDescending(c => c.Steps).ThenBy(c => c.Cell.ToString(), StringComparer.Ordinal)
            .Select(c => c.Cell).FirstOrDefault();
        if (cell == default)
        {
            throw new CliException("the steady traffic ran no decode step at a batch above 1: raise --load");
        }

        engine.Engine.SetCellSlowdown(cell, settings.CellSlowdown);
        var firstFlag = 0;
        for (var w = 1; w <= settings.CellWindows && firstFlag == 0; w++)
        {
            if ((await WindowAsync("cell")).Flagged.Contains(cell.ToString()))
            {
                firstFlag = w;
            }
        }

        var cellPhase = windows.Skip(steady.Length).ToArray();
        var estimate = cellPhase[^1].Cells.FirstOrDefault(c => c.Cell == cell.ToString())?.EstimatedMs;
        var profiledCost = CellCost(model, cell);

        // The slowed cell's true cost: its plan rows measured again with the slowdown on, fitted with the rest of the profile.
        var reprofilePath = Path.Combine(outDir, "reprofile.csv");
        File.Delete(reprofilePath);
        var rows = plan.Rows.Where(r => SameCell(r.Bucket, r.Batch, cell)).ToArray();
        await engine.ProfileRoundAsync(rows, reprofilePath, settings.Repeats, warmUp: true, $"re-profiling {cell} slowed", ui, ct);
        var reprofiled = CliFiles.ReadMeasurements(reprofilePath, "re-profile").Rows;
        var slowedCost = CellCost(BucketFitter.Fit(buckets,
            [.. profiled.Where(m => !(m.Bucket is { } k && SameCell(k, m.Batch, cell))), .. reprofiled], statistic), cell);

        // 4. Every cell slowed alike.
        engine.Engine.SetCellSlowdown(cell, 1);
        foreach (var bucket in buckets.Prefill.Select(p => new BucketId(BucketKind.Prefill, p))
                     .Concat(buckets.Decode.Select(d => new BucketId(BucketKind.Decode, d))))
        {
            engine.Engine.SetSlowdown(bucket, settings.AllSlowdown); // decode-N: at every batch bucket
        }

        for (var w = 0; w < settings.AllWindows; w++)
        {
            await WindowAsync("all");
        }

        var allPhase = windows.Skip(steady.Length + cellPhase.Length).ToArray();

        // 5. Tenant B names tenant A's deployment with its own key.
        var receivedBefore = (await a.GetTrafficAsync(Device, id, ct)).Received;
        await b.CreateDeploymentAsync(Device, spec with { Name = "traffic-b" }, ct);
        int sentByB;
        using (var foreign = new TrafficSpans(lens.HttpAddress, KeyB, Device, id, settings.Window))
        {
            var start = DateTimeOffset.UtcNow;
            sentByB = foreign.Record(start, windows.Count > 0
                ? (await LoadReplay.RunAsync(backend, (workload with { RequestsPerSecond = rate, Count = Math.Min(settings.Window, 100) })
                    .Generate(buckets).Requests, new LoadReplayOptions(), ct)).Requests
                : []);
            foreign.Flush();
        }

        var receivedAfter = (await a.GetTrafficAsync(Device, id, ct)).Received;
        var bSeesA = true;
        try
        {
            await b.GetTrafficAsync(Device, id, ct);
        }
        catch (LensApiException ex) when (ex.Status == (int)HttpStatusCode.NotFound)
        {
            bSeesA = false;
        }

        var result = TrafficDemoResult.Judge(engine.Describe, buckets.ToString(), capacity, rate, settings, cell, firstFlag, profiledCost,
            slowedCost, estimate, steady, cellPhase, allPhase, sentByB, receivedAfter - receivedBefore, bSeesA);
        CliFiles.WriteAtomically(Path.Combine(outDir, "traffic.json"), w => w.Write(result.ToJson()));
        if (settings.Json)
        {
            CliJson.Write(result);
        }
        else
        {
            result.Write(ui);
            ui.MarkupLineInterpolated($"Wrote {outDir}/profile.csv, reprofile.csv, model.json, window-*.csv and traffic.json.");
        }

        return LensApp.Ok;
    }

    private static bool SameCell(BucketId bucket, int batch, BucketId cell) =>
        bucket.Kind == BucketKind.Decode && bucket.Edge == cell.Edge && Math.Max(batch, bucket.Batch) == cell.Batch;

    private static double CellCost(DeploymentModel model, BucketId cell) =>
        model.StepMs(model.Buckets.BatchIndex(cell.Batch), model.Buckets.DecodeIndex(cell.Edge));

    private static MeasurementInput ToInput(MeasuredRequest m) =>
        new(m.InputLength, m.OutputLength, m.E2eMs, m.TtftMs, m.Bucket?.ToString(), m.Batch, m.Group);

    /// <summary>An embedded LENS server on free loopback ports with tenants A and B; OTLP windows of <paramref name="window"/> requests.</summary>
    private static Task<LensServer> StartServiceAsync(int window, int baselineWindows, CancellationToken ct) =>
        LensHost.StartAsync(new LensServerOptions
        {
            SiloPort = FreePort(),
            GatewayPort = FreePort(),
            HttpPort = 0,
            ServiceId = "lens-traffic-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["tenant-a"] = KeyA, ["tenant-b"] = KeyB },
            Grains = { TrafficWindow = window, TrafficBaselineWindows = baselineWindows },
        }, builder => builder.Logging.ClearProviders(), ct); // the demo prints its own progress

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    internal static string Percent(double? v) =>
        v is { } x && double.IsFinite(x) ? (x * 100).ToString("+0.0;-0.0", CultureInfo.InvariantCulture) + "%" : "-";
}
