using System.Diagnostics;
using System.Globalization;
using Lens.Core;
using Lens.Measurement;
using Spectre.Console;

namespace Lens.Cli.Commands;

/// <summary>
/// <c>lens demo --serving</c> (issue 14): profiles the batched reference engine through its OpenAI-compatible server in groups,
/// fits <c>A[p]</c> and <c>S[B, D]</c>, finds the rate the fitted model sustains for a workload mix, replays seeded Poisson traces
/// at fractions of it (each twice, interleaved, the second being the noise floor), and compares measured percentiles and
/// throughput with <see cref="ServingSimulation"/>'s prediction of the same traces.
/// </summary>
internal static class ServingDemo
{
    public const string DefaultProfile = "nxdi-small-batch";

    /// <summary>Requests of the long traces the capacity and the plotted lines are simulated on.</summary>
    public const int SimulatedRequests = 1000;

    private const int MinRequests = 100, MaxRequests = 300;

    /// <summary>Parses <c>--loads</c>: fractions of the sustainable rate, each in (0, 2].</summary>
    public static double[] ParseLoads(string text)
    {
        var loads = text.Split(',').Select(part =>
            double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && f > 0 && f <= 2
                ? f
                : throw new ArgumentException($"--loads '{text}': '{part}' is not a fraction of the sustainable rate in (0, 2]")).ToArray();
        return loads.Length is >= 1 and <= 10 ? loads : throw new ArgumentException($"--loads '{text}': give 1 to 10 fractions");
    }

    public static async Task<int> RunAsync(DemoSettings settings, RepeatStatistic statistic, IAnsiConsole ui, CancellationToken ct)
    {
        var outDir = settings.OutputFolder;
        var loads = ParseLoads(settings.Loads);
        var input = LengthDistribution.Parse(settings.Input, "--input");
        var output = LengthDistribution.Parse(settings.Output, "--output");

        await using var engine = await EngineHost.StartAsync(settings.EngineProfile, direct: false, ct);
        var backend = engine.Http!;
        var buckets = engine.ServingBuckets;
        var policy = engine.Policy;
        ui.MarkupLineInterpolated(
            $"[bold]LENS serving demo[/] on {engine.Describe}: {policy.Name}, {buckets}, max_num_seqs {engine.Engine.Profile.MaxNumSeqs}");

        // 1. Profile in groups, one round of the plan per repeat, the rounds interleaved with the replay passes (round 1, pass 1,
        // round 2, pass 2, the other rounds), so that drift of the machine hits profile and replays alike (method.md, "Profiling").
        // Each round resumes the same file (a fresh one: the runner would resume an old one); round 1 alone sets the replay rates.
        var plan = PlanRows(buckets, policy, settings.Seed);
        var profilePath = Path.Combine(outDir, "profile.csv");
        File.Delete(profilePath);
        var profiled = TimeSpan.Zero;
        DeploymentModel FitProfile() => Fit(buckets, policy, CliFiles.ReadMeasurements(profilePath, "profile").Rows, statistic);
        async Task ProfileRoundAsync(int round)
        {
            var clock = Stopwatch.StartNew();
            await engine.ProfileRoundAsync(plan, profilePath, round, warmUp: round == 1, $"profiling, round {round} of {settings.Repeats}", ui, ct);
            profiled += clock.Elapsed;
        }

        await ProfileRoundAsync(1);
        var model = FitProfile();

        // 2. The sustainable rate of the mix, and one trace per load: the same seeded requests, time-scaled by the rate.
        var workload = new Workload { RequestsPerSecond = 1, Count = SimulatedRequests, Seed = settings.Seed, InputDist = input.Text, OutputDist = output.Text };
        var generated = workload.Generate(model);
        var (mix, clamped) = (generated.Requests, generated.Clamped);
        var firstCapacity = ServingComparison.SaturatedRequestsPerSecond(model, mix);
        var runs = loads.Select(f =>
        {
            var rate = f * firstCapacity;
            var count = settings.Requests > 0 ? settings.Requests : Math.Clamp((int)Math.Round(rate * settings.Duration), MinRequests, MaxRequests);
            var trace = (workload with { RequestsPerSecond = rate, Count = count }).Generate(model).Requests;
            return new LoadRun(f, rate, trace);
        }).ToArray();
        ui.MarkupLineInterpolated(
            $"Mix: prompts {input}, outputs {output} (seed {settings.Seed}; {clamped} of {SimulatedRequests} clamped into the buckets). Sustainable rate after round 1 (fitted model, queue never empty): {firstCapacity:0.00} requests/s.");

        foreach (var run in runs)
        {
            CliFiles.WriteAtomically(Path.Combine(outDir, $"trace-{run.Name}.csv"), w => WriteTrace(w, run.Trace));
        }

        // 3. Replay every load twice, interleaved (A, B, C, A, B, C), so that drift of the machine hits each load's pair alike.
        await backend.EnsureModelAsync(ct);
        for (var pass = 0; pass < 2; pass++)
        {
            if (pass > 0 && settings.Repeats > 1)
            {
                await ProfileRoundAsync(2);
            }

            foreach (var run in runs)
            {
                var span = run.Trace[^1].ArrivalMs / 1000;
                ui.MarkupLineInterpolated(
                    $"Replay {pass + 1}/2 at {run.Fraction:0.##} x capacity = {run.Rate:0.00} requests/s: {run.Trace.Count} requests over {span:0.0} s");
                var replay = await LoadReplay.RunAsync(backend, run.Trace, new LoadReplayOptions(), ct);
                var file = Path.Combine(outDir, $"measured-{run.Name}{(pass == 0 ? "" : "-twin")}.csv");
                CliFiles.WriteAtomically(file, w => LoadReplay.Write(w, replay.Requests));
                if (replay.Summary.Failed > 0)
                {
                    throw new CliException($"{replay.Summary.Failed} of {run.Trace.Count} replayed requests failed; see the error column of {file}");
                }

                run.Replays.Add(replay);
            }
        }

        for (var round = 3; round <= settings.Repeats; round++)
        {
            await ProfileRoundAsync(round);
        }

        model = FitProfile();
        CliFiles.WriteAtomically(Path.Combine(outDir, "model.json"), w => w.Write(ModelJson.Serialize(model)));
        var capacity = ServingComparison.SaturatedRequestsPerSecond(model, mix);
        ui.MarkupLineInterpolated(
            $"Profiled {plan.Sum(r => r.Batch) * settings.Repeats} requests in {plan.Count * settings.Repeats} groups ({statistic} of {settings.Repeats} rounds) in {profiled.TotalSeconds:0.0} s; the final fit sustains {capacity:0.00} requests/s.");

        // 4. Predict every trace with the fitted model, compare.
        foreach (var run in runs)
        {
            var predicted = ServingSimulation.Simulate(model, run.Trace);
            CliFiles.WriteAtomically(Path.Combine(outDir, $"predicted-{run.Name}.csv"), w => SimulateCommand.WriteServed(w, run.Trace, predicted));
            run.Figures = ServingComparison.Compare(Measured(run.Replays[0]), Measured(run.Replays[1]), ServingFigures.Of(predicted),
                FigureComparison.MinGoalAt(run.Fraction));
        }

        var png = Path.Combine(outDir, "serving.png");
        ServingDemoPlot.Write(png, model, mix, capacity, runs.Select(r => (r.Rate, Measured(r.Replays[0]), Measured(r.Replays[1]))).ToArray());
        var met = runs.All(r => r.Figures.All(f => f.Met));
        if (settings.Json)
        {
            CliJson.Write(new
            {
                engine = engine.Describe,
                buckets = buckets.ToString(),
                statistic = statistic.ToString(),
                repeats = settings.Repeats,
                mix = new { input = input.Text, output = output.Text, seed = settings.Seed, clamped, of = SimulatedRequests },
                capacityPerSecond = capacity,
                capacityAfterFirstRoundPerSecond = firstCapacity,
                loads = runs.Select(r => new
                {
                    fraction = r.Fraction,
                    rate = r.Rate,
                    requests = r.Trace.Count,
                    meanSendLagMs = r.Replays.Select(x => x.Summary.MeanSendLagMs).ToArray(),
                    maxSendLagMs = r.Replays.Select(x => x.Summary.MaxSendLagMs).ToArray(),
                    figures = r.Figures.Select(f => new
                    {
                        figure = f.Figure, measured = f.Measured, twin = f.Twin, predicted = f.Predicted, noiseFloor = f.NoiseFloor, error = f.Error,
                        goal = f.Goal, met = f.Met,
                    }),
                }),
                met,
                outputs = new { folder = outDir, plot = png },
            });
        }
        else
        {
            WriteTable(ui, runs);
            ui.MarkupInterpolated(
                $"Goal per figure: |predicted - measured| / measured <= max({FigureComparison.MinGoalLight * 100:0}% up to 60% load, {FigureComparison.MinGoalHeavy * 100:0}% above, {FigureComparison.NoiseFactor:0} x noise floor) -> ");
            ui.MarkupLine(met ? "[green]all met[/]" : $"[red]{runs.Sum(r => r.Figures.Count(f => !f.Met))} not met[/]");
            ui.MarkupLineInterpolated(
                $"Wrote {outDir}/profile.csv, model.json, trace-*.csv, measured-*.csv (and -twin), predicted-*.csv and serving.png.");
        }

        return LensApp.Ok;
    }

    /// <summary>The profiling plan of <paramref name="buckets"/> under <paramref name="policy"/>: one pass over its cells.</summary>
    public static IReadOnlyList<PlanRow> PlanRows(BucketSet buckets, SchedulingPolicy policy, int seed) => policy.IsDefault
        ? ProfilingPlanner.Create(buckets, new PlanOptions(1, null, seed)).Rows
        : PolicyPlanner.Create(buckets, policy, new PlanOptions(1, null, seed)).Rows;

    /// <summary>
    /// The fit of a profile under <paramref name="policy"/>: prefill-first padded by <see cref="BucketFitter"/> (the policy fit's special
    /// case, as the service fits), any other policy by <see cref="PolicyFitter"/>, whose cells no servable request reaches stay unfitted.
    /// </summary>
    public static DeploymentModel Fit(BucketSet buckets, SchedulingPolicy policy, IReadOnlyList<MeasuredRequest> rows, RepeatStatistic statistic) =>
        policy.IsDefault ? BucketFitter.Fit(buckets, rows, statistic) : PolicyFitter.Fit(buckets, policy, rows, statistic).Model;

    /// <summary>The measured figures of a replay, from each request's scheduled arrival (a late client counts against the server).</summary>
    public static ServingFigures Measured(ReplayResult replay) =>
        ServingFigures.Of([.. replay.Requests.Where(r => !r.Failed).Select(r => new ServedLatency(r.ArrivalMs, r.OutputLength, r.TtftMs, r.E2eMs))]);

    private static void WriteTrace(TextWriter w, IReadOnlyList<TraceRequest> trace)
    {
        w.WriteLine("arrival_ms,input_len,output_len");
        foreach (var r in trace)
        {
            w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.ArrivalMs:R},{r.InputLength},{r.OutputLength}"));
        }
    }

    private static void WriteTable(IAnsiConsole ui, IEnumerable<LoadRun> runs)
    {
        var table = new Table().Title("measured (first replay) vs predicted; noise floor = |second - first| / first")
            .AddColumns("load", "figure", "measured", "twin", "noise floor", "predicted", "error", "goal", "");
        foreach (var run in runs)
        {
            var label = string.Create(CultureInfo.InvariantCulture, $"{run.Fraction * 100:0}% = {run.Rate:0.00}/s, {run.Trace.Count} req");
            foreach (var f in run.Figures)
            {
                table.AddRow(Markup.Escape(label), Markup.Escape(f.Figure), F(f.Measured), F(f.Twin), P(f.NoiseFloor), F(f.Predicted), P(f.Error), P(f.Goal),
                    f.Met ? "[green]met[/]" : "[red]missed[/]");
                label = "";
            }
        }

        ui.Write(table);
    }

    private static string F(double v) => double.IsFinite(v) ? v.ToString("0.00", CultureInfo.InvariantCulture) : "-";

    private static string P(double v) => double.IsFinite(v) ? (v * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%" : "-";

    private sealed class LoadRun(double fraction, double rate, IReadOnlyList<TraceRequest> trace)
    {
        public double Fraction { get; } = fraction;

        public double Rate { get; } = rate;

        public IReadOnlyList<TraceRequest> Trace { get; } = trace;

        /// <summary>The load in percent of the sustainable rate, for file names.</summary>
        public string Name => ((int)Math.Round(Fraction * 100)).ToString(CultureInfo.InvariantCulture);

        public List<ReplayResult> Replays { get; } = [];

        public IReadOnlyList<FigureComparison> Figures { get; set; } = [];
    }
}
