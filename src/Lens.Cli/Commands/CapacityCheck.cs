using System.Diagnostics;
using System.Globalization;
using Lens.Core;
using Lens.Engine;
using Lens.Measurement;
using Spectre.Console;

namespace Lens.Cli.Commands;

/// <summary>One layout of the check: a reference-engine profile standing in for tensor-parallel degree <see cref="Degree"/>.</summary>
internal sealed record CheckLayout(int Degree, string Name, string ProfilePath, string ModelPath, DeploymentModel Model);

/// <summary>One fleet replayed: predicted (the serving simulation) against measured (the twin fleet over HTTP).</summary>
internal sealed record FleetCheck(
    string Layout,
    int Replicas,
    bool Recommended,
    int Chips,
    double? CostPerHour,
    double PredictedAttainment,
    double MeasuredAttainment,
    SimulationResult Predicted,
    LatencyPercentiles MeasuredTtft,
    LatencyPercentiles MeasuredTpot,
    LatencyPercentiles MeasuredE2e,
    int Failed)
{
    /// <summary>|predicted - measured| attainment, in points (percent).</summary>
    public double ErrorPoints => Math.Abs(PredictedAttainment - MeasuredAttainment) * 100;
}

/// <summary>A layout's verdict (issue 20, "Done when"): its recommended fleet meets the SLO when replayed and one replica fewer does
/// not, or LENS's predicted attainment is within <see cref="CapacityCheck.GoalPoints"/> of the measured one for both.</summary>
internal sealed record LayoutVerdict(string Layout, int Replicas, bool Separates, double WorstErrorPoints, bool Met);

/// <summary>
/// Issue 20's end-to-end check: two layouts of one model (a reference-engine profile, and the same with its layers divided by the
/// tensor-parallel degree, standing in for the work one chip of a TP-d replica does), each profiled through the engine's
/// OpenAI-compatible server and fitted; a Poisson trace and an SLO derived from those fits (not from constants); the capacity plan;
/// then every recommended fleet, and the same fleet with one replica fewer, replayed against digital twins of the fitted models
/// (<see cref="DigitalTwin"/>: two cores cannot host several compute replicas faithfully), measured attainment against predicted.
/// </summary>
internal static class CapacityCheck
{
    /// <summary>The tolerance on attainment: 2 points.</summary>
    public const double GoalPoints = 2;

    public static async Task<IReadOnlyList<CheckLayout>> ProfileLayoutsAsync(CapacityCheckSettings settings, RepeatStatistic statistic,
        IAnsiConsole ui, CancellationToken ct)
    {
        var baseProfile = EngineHost.LoadProfile(settings.Engine);
        var layouts = new List<CheckLayout>();
        foreach (var degree in settings.ParseDegrees(baseProfile.Layers))
        {
            var name = $"tp{degree}";
            var profile = baseProfile with { Name = $"{baseProfile.Name}-{name}", Layers = baseProfile.Layers / degree };
            var profilePath = Path.Combine(settings.OutDir, $"{name}.profile.json");
            CliFiles.WriteAtomically(profilePath, w => w.Write(profile.ToJson()));
            await using var engine = await EngineHost.StartAsync(profilePath, direct: false, ct);
            var buckets = engine.ServingBuckets;
            var plan = ProfilingPlanner.Create(buckets, new PlanOptions(1, null, settings.Seed));
            var measurements = Path.Combine(settings.OutDir, $"{name}.profile.csv");
            File.Delete(measurements);
            var clock = Stopwatch.StartNew();
            for (var round = 1; round <= settings.Repeats; round++)
            {
                await engine.ProfileRoundAsync(plan.Rows, measurements, round, warmUp: round == 1,
                    $"profiling {name} ({profile.Layers} layers), round {round} of {settings.Repeats}", ui, ct);
            }

            var model = BucketFitter.Fit(buckets, CliFiles.ReadMeasurements(measurements, "profile").Rows, statistic)
                .WithLayout(new DeploymentLayout(degree, "reference-cpu", settings.PricePerChipHour));
            var modelPath = Path.Combine(settings.OutDir, $"{name}.json");
            CliFiles.WriteAtomically(modelPath, w => w.Write(ModelJson.Serialize(model)));
            ui.MarkupLineInterpolated($"Profiled {name} ({profile.Layers} layers, {degree} chip(s)) in {clock.Elapsed.TotalSeconds:0} s: {modelPath}");
            layouts.Add(new CheckLayout(degree, name, profilePath, modelPath, model));
        }

        return layouts;
    }

    /// <summary>
    /// The workload and SLO, from the fits: the trace's rate is <c>--load</c> times what one replica of the fastest layout sustains
    /// on the mix (so every layout needs several replicas); the TTFT limit is twice the largest fitted TTFT of any layout in the
    /// prefill buckets the trace's prompts reach, the TPOT limit twice the largest fitted step of any layout at any batch bucket in
    /// the decode buckets its sequences reach: a request served without waiting, alone or in any batch, meets both on every layout
    /// (even where a noisy fit is not monotone), and queueing and prefill interruptions decide.
    /// </summary>
    public static (IReadOnlyList<TraceRequest> Trace, CapacitySlo Slo, double Rate, double[] Capacities) Workload(
        CapacityCheckSettings settings, IReadOnlyList<CheckLayout> layouts)
    {
        var buckets = layouts[0].Model.Buckets;
        var workload = new Workload { RequestsPerSecond = 1, Count = 1000, Seed = settings.Seed, InputDist = settings.Input, OutputDist = settings.Output };
        var mix = workload.Generate(buckets).Requests;
        var capacities = layouts.Select(l => ServingComparison.SaturatedRequestsPerSecond(l.Model, mix)).ToArray();
        var rate = settings.Load * capacities.Max();
        var trace = (workload with { RequestsPerSecond = rate, Count = settings.Requests }).Generate(buckets).Requests;
        var prefills = buckets.PrefillIndex(trace.Max(r => r.InputLength));
        var decodes = buckets.DecodeIndex(trace.Max(r => r.InputLength + r.OutputLength));
        var ttft = layouts.Max(l => Enumerable.Range(0, prefills + 1).Max(l.Model.TtftMs));
        var tpot = layouts.Max(l => Enumerable.Range(0, buckets.Batch.Length)
            .Max(b => Enumerable.Range(0, decodes + 1).Max(d => l.Model.StepMs(b, d))));
        // Rounded to a microsecond, so that the capacity command printed with them plans exactly the same.
        var slo = new CapacitySlo(Math.Round(2 * ttft, 3), Math.Round(2 * tpot, 3), settings.Attainment);
        return (trace, slo, rate, capacities);
    }

    /// <summary>Replays <paramref name="trace"/> against a twin fleet of <paramref name="replicas"/> and compares with the simulation.</summary>
    public static async Task<FleetCheck> ReplayAsync(CapacityCheckSettings settings, CheckLayout layout, CandidatePlan plan, int replicas,
        IReadOnlyList<TraceRequest> trace, CapacitySlo slo, CancellationToken ct)
    {
        var k = settings.Slowdown;
        using var twin = DigitalTwin.Create(layout.Model, replicas, layout.Name, k);
        await using var server = await EngineServer.StartAsync(twin, 0, null, ct);
        using var backend = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = server.BaseAddress,
            Model = twin.Name,
            PromptTokenIdMin = 0,
            PromptTokenIdMax = twin.Vocab,
        });
        await backend.EnsureModelAsync(ct);
        // Connections and code warm before anything is timed: as many requests at once as the fleet runs.
        await Task.WhenAll(Enumerable.Range(0, Math.Min(64, replicas * twin.MaxNumSeqs)).Select(_ => backend.MeasureAsync(1, 2, ct)));
        var replay = await LoadReplay.RunAsync(backend, trace, new LoadReplayOptions(TimeScale: k), ct);
        CliFiles.WriteAtomically(Path.Combine(settings.OutDir, $"measured-{layout.Name}-{replicas}.csv"), w => LoadReplay.Write(w, replay.Requests));

        // Measured in the deployment's time (divided by the slowdown), from each request's scheduled arrival; a failure is a miss.
        var served = replay.Requests.Where(r => !r.Failed).Select(r => new ServedLatency(r.ArrivalMs / k, r.OutputLength, r.TtftMs / k, r.E2eMs / k)).ToArray();
        var met = served.Count(r => r.TtftMs <= slo.TtftMs && (r.OutputLength == 1 || r.TpotMs <= slo.TpotMs));
        var candidate = new CapacityCandidate(layout.Name, layout.Model);
        var predicted = ServingSimulation.Simulate(layout.Model, trace, null, replicas).Summarize(slo.Objectives);
        var chips = replicas * layout.Degree;
        return new FleetCheck(layout.Name, replicas, replicas == plan.Replicas, chips, plan.PricePerChipHour * chips,
            CapacityPlanner.Attainment(candidate, replicas, trace, slo.Objectives, FleetRouting.Shared), (double)met / trace.Count,
            predicted, LatencyPercentiles.Of(served.Select(r => r.TtftMs)), LatencyPercentiles.Of(served.Where(r => r.OutputLength > 1).Select(r => r.TpotMs)),
            LatencyPercentiles.Of(served.Select(r => r.E2eMs)), replay.Summary.Failed);
    }

    /// <summary>The verdict of one layout from its recommended fleet and the one with a replica fewer.</summary>
    public static LayoutVerdict Judge(string layout, FleetCheck recommended, FleetCheck? fewer, double attainment)
    {
        var separates = recommended.MeasuredAttainment >= attainment && (fewer is null || fewer.MeasuredAttainment < attainment);
        var worst = Math.Max(recommended.ErrorPoints, fewer?.ErrorPoints ?? 0);
        return new LayoutVerdict(layout, recommended.Replicas, separates, worst, separates || worst <= GoalPoints);
    }

    public static void WriteTrace(string path, IReadOnlyList<TraceRequest> trace) => CliFiles.WriteAtomically(path, w =>
    {
        w.WriteLine("arrival_ms,input_len,output_len");
        foreach (var r in trace)
        {
            w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.ArrivalMs:R},{r.InputLength},{r.OutputLength}"));
        }
    });
}
