using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Lens.Core;
using Lens.Measurement;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed partial class DemoSettings : CommandSettings
{
    [CommandOption("--engine <PROFILE>")]
    [Description("Reference engine profile: a shipped name (see 'lens engine profiles') or a JSON file. Default nxdi-small, or nxdi-small-batch with --serving.")]
    public string? Engine { get; init; }

    [CommandOption("--serving")]
    [Description("The serving demo: profile the batched engine in groups, replay Poisson traces at three loads twice each, compare with the serving simulation.")]
    public bool Serving { get; init; }

    [CommandOption("--loads <FRACTIONS>")]
    [Description("--serving: request rates as fractions of the fitted model's sustainable rate, comma-separated.")]
    [DefaultValue("0.3,0.6,0.85")]
    public string Loads { get; init; } = "0.3,0.6,0.85";

    [CommandOption("--duration <SECONDS>")]
    [Description("--serving: the length each replay aims at; its request count is rate x duration, within 100..300.")]
    [DefaultValue(30)]
    public int Duration { get; init; } = 30;

    [CommandOption("--requests <N>")]
    [Description("--serving: requests per replay, the same at every load (0: from --duration).")]
    [DefaultValue(0)]
    public int Requests { get; init; }

    [CommandOption("--input <DIST>")]
    [Description("--serving: prompt lengths of the mix (fixed:N, uniform:MIN-MAX, normal:MEAN,SD, lognormal:MEDIAN,SIGMA), clamped into the buckets.")]
    [DefaultValue("uniform:1-256")]
    public string Input { get; init; } = "uniform:1-256";

    [CommandOption("--output <DIST>")]
    [Description("--serving: output lengths of the mix, clamped into the buckets.")]
    [DefaultValue("uniform:16-128")]
    public string Output { get; init; } = "uniform:16-128";

    [CommandOption("--heldout <N>")]
    [Description("Held-out request pairs to score on (half near bucket edges).")]
    [DefaultValue(100)]
    public int HeldOut { get; init; } = 100;

    [CommandOption("--repeats <R>")]
    [Description("Repeats of every point; the profile's statistic reduces them. With --serving: profile rounds, interleaved with the replays.")]
    [DefaultValue(3)]
    public int Repeats { get; init; } = 3;

    [CommandOption("--statistic <NAME>")]
    [Description("How repeats are reduced: min, median, mean, pNN; used for profile and evaluation alike. Default min (one request on " +
                 "an idle device: interference only slows it), and mean with --serving (under load a replica's time is a sum of many " +
                 "steps, whose expectation is the mean cost, not the undisturbed minimum).")]
    public string? Statistic { get; init; }

    /// <summary>The statistic asked for, or the mode's default.</summary>
    public string EffectiveStatistic => Statistic ?? (Serving || Traffic ? "mean" : "min");

    [CommandOption("--max-output <N>")]
    [Description("Cap on held-out output lengths, to bound the run's time; 0 draws them over the whole range.")]
    [DefaultValue(256)]
    public int MaxOutput { get; init; } = 256;

    [CommandOption("--sweep <N>")]
    [Description("Input lengths of the plotted sweep (plus both sides of every prefill edge).")]
    [DefaultValue(24)]
    public int Sweep { get; init; } = 24;

    [CommandOption("--seed <S>")]
    [Description("Seed of held-out pairs and of the interleaved order; with --serving, of the plan and the workload mix.")]
    [DefaultValue(1)]
    public int Seed { get; init; } = 1;

    [CommandOption("--direct")]
    [Description("Time the engine in-process instead of through its OpenAI-compatible HTTP server on loopback.")]
    public bool Direct { get; init; }

    [CommandOption("--out-dir <DIR>")]
    [Description("Where to write measurements, model.json and the plot. Default lens-demo, or lens-demo-serving with --serving.")]
    public string? OutDir { get; init; }

    /// <summary>The engine profile to start: the option, else the default of the chosen demo.</summary>
    public string EngineProfile => Engine ?? (Serving ? ServingDemo.DefaultProfile : Traffic ? TrafficDemo.DefaultProfile : EngineHost.DefaultProfile);

    /// <summary>The output folder: the option, else the default of the chosen demo.</summary>
    public string OutputFolder => OutDir ?? (Serving ? "lens-demo-serving" : Traffic ? "lens-demo-traffic" : "lens-demo");

    [CommandOption("--json")]
    [Description("Print the result as JSON (progress still goes to stderr).")]
    public bool Json { get; init; }

    public override ValidationResult Validate()
    {
        if (HeldOut < 1 || Repeats < 1 || Sweep < 0 || MaxOutput < 0)
        {
            return ValidationResult.Error("--heldout and --repeats must be at least 1, --sweep and --max-output at least 0");
        }

        if (Serving && Direct)
        {
            return ValidationResult.Error("--direct times single requests in-process; the --serving demo replays load through the HTTP server only");
        }

        if (ValidateTraffic() is { } traffic)
        {
            return ValidationResult.Error(traffic);
        }

        if (Duration is < 1 or > 3600 || Requests is < 0 or > 100_000)
        {
            return ValidationResult.Error($"--duration must be in 1..3600 s and --requests in 0..100000; got {Duration} and {Requests}");
        }

        try
        {
            RepeatStatistic.Parse(EffectiveStatistic);
            ServingDemo.ParseLoads(Loads);
            LengthDistribution.Parse(Input, "--input");
            LengthDistribution.Parse(Output, "--output");
            return ValidationResult.Success();
        }
        catch (FormatException ex)
        {
            return ValidationResult.Error($"--statistic: {ex.Message}");
        }
        catch (ArgumentException ex)
        {
            return ValidationResult.Error(ex.Message);
        }
    }
}

/// <summary>
/// The main job on the embedded default: starts the reference engine, profiles it with two measurements per bucket, fits, times
/// held-out pairs (interleaved with the profile in one run, so drift hits both alike), and prints LENS's errors beside the
/// baselines' and the noise floor.
/// </summary>
public sealed class DemoCommand : AsyncCommand<DemoSettings>
{
    /// <summary>LENS's goal on the reference engine: the published 2.15% MAPE, or 1.25x the noise floor where that is higher.</summary>
    public const double PublishedMape = 2.15;
    public const double NoiseFloorFactor = 1.25;

    /// <summary>The intervals' goal: single held-out measurements inside them within this many points of the stated level.</summary>
    public const double CoverageTolerance = 0.05;
    private const int SweepOutput = 16;

    public override async Task<int> ExecuteAsync(CommandContext context, DemoSettings settings, CancellationToken cancellationToken)
    {
        var statistic = RepeatStatistic.Parse(settings.EffectiveStatistic);
        var ui = settings.Json ? AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }) : AnsiConsole.Console;
        var outDir = settings.OutputFolder;
        Directory.CreateDirectory(outDir);
        if (settings.Serving)
        {
            return await ServingDemo.RunAsync(settings, statistic, ui, cancellationToken);
        }

        if (settings.Traffic)
        {
            return await TrafficDemo.RunAsync(settings, statistic, ui, cancellationToken);
        }

        await using var engine = await EngineHost.StartAsync(settings.EngineProfile, settings.Direct, cancellationToken);
        var buckets = engine.Buckets;
        var plan = EvaluationPlan.Create(buckets, new EvaluationOptions(settings.HeldOut, settings.Repeats, settings.MaxOutput == 0 ? null : settings.MaxOutput,
            settings.Sweep, SweepOutput, settings.Seed));
        ui.MarkupLineInterpolated($"[bold]LENS demo[/] on {engine.Describe}");
        ui.MarkupLineInterpolated(
            $"{buckets}; {plan.Profile.Rows.Count} profiling requests (two per decode bucket), {plan.HeldOutPairs.Count} held-out pairs measured twice, {plan.SweepInputs.Count} sweep points; x{settings.Repeats} repeats, interleaved: {plan.Rows.Count} requests, {plan.DecodeSteps} decode steps.");

        var measured = await MeasureAsync(ui, engine.Backend, plan, cancellationToken);
        WriteMeasurements(outDir, measured);

        var score = EvaluationScore.Compute(buckets, measured, statistic);
        CliFiles.WriteAtomically(Path.Combine(outDir, "model.json"), w => w.Write(ModelJson.Serialize(score.Model)));
        var png = Path.Combine(outDir, "demo.png");
        DemoPlot.Write(png, score.Model, score.Sweep, statistic, SweepOutput);

        var lens = score.Evaluations[0];
        var goalE2e = Math.Max(PublishedMape, NoiseFloorFactor * score.NoiseFloor.E2e.Mean);
        var goalTtft = Math.Max(PublishedMape, NoiseFloorFactor * score.NoiseFloor.Ttft.Mean);
        var met = lens.E2e.Mean <= goalE2e && lens.Ttft.Mean <= goalTtft;
        if (settings.Json)
        {
            CliJson.Write(new
            {
                engine = engine.Describe,
                buckets = buckets.ToString(),
                statistic = statistic.ToString(),
                requests = plan.Rows.Count,
                heldOutPairs = plan.HeldOutPairs.Count,
                results = score.Evaluations.Append(score.NoiseFloor).Select(e => new { predictor = e.Predictor, e2e = e.E2e, ttft = e.Ttft, tpot = e.Tpot }),
                goal = new { e2eMape = goalE2e, ttftMape = goalTtft, met },
                intervals = new
                {
                    level = score.HeldOutCoverage.Level, heldOut = score.HeldOutCoverage, twins = score.TwinCoverage,
                    withinTolerance = CoverageMet(score.HeldOutCoverage), tolerance = CoverageTolerance,
                },
                outputs = new { model = Path.Combine(outDir, "model.json"), plot = png },
            });
        }
        else
        {
            ErrorTable.Write(score.Evaluations.Append(score.NoiseFloor),
                $"{plan.HeldOutPairs.Count} held-out pairs, {statistic} of {settings.Repeats} repeats");
            ui.MarkupInterpolated(
                $"Goal: MAPE at most {PublishedMape}% (published) or {NoiseFloorFactor}x the noise floor: E2E {lens.E2e.Mean:0.00}% vs {goalE2e:0.00}%, TTFT {lens.Ttft.Mean:0.00}% vs {goalTtft:0.00}% -> ");
            ui.MarkupLine(met ? "[green]met[/]" : "[red]not met[/]");
            WriteCoverage(ui, score.HeldOutCoverage, score.TwinCoverage);
            ui.MarkupLineInterpolated($"Wrote {outDir}/profile.csv, heldout.csv, heldout-twin.csv, model.json and demo.png.");
        }

        return LensApp.Ok;
    }

    private static bool CoverageMet(IntervalCoverage c) => c.E2e.Within(c.Level, CoverageTolerance);

    /// <summary>The intervals' coverage of single held-out and twin measurements, beside the stated level.</summary>
    private static void WriteCoverage(IAnsiConsole ui, IntervalCoverage heldOut, IntervalCoverage twins)
    {
        static string Of(Coverage c) => c.Count == 0
            ? "-"
            : string.Create(CultureInfo.InvariantCulture, $"{c.Fraction * 100:0.0}% inside ({c.Above} above, {c.Below} below, of {c.Count})");
        ui.MarkupLineInterpolated(
            $"Intervals, stated {heldOut.Level * 100:0.#}%: E2E held-out {Of(heldOut.E2e)}, twins {Of(twins.E2e)}; TTFT held-out {Of(heldOut.Ttft)}, twins {Of(twins.Ttft)}.");
        ui.MarkupInterpolated($"Goal: E2E held-out coverage within {CoverageTolerance * 100:0} points of the stated level -> ");
        ui.MarkupLine(CoverageMet(heldOut) ? "[green]met[/]" : "[red]not met[/]");
    }

    private static async Task<List<MeasuredRow>> MeasureAsync(IAnsiConsole ui, IMeasurementBackend backend, EvaluationPlan plan, CancellationToken ct)
    {
        // Warm up every bucket once, untimed: first calls load graphs and fault pages in.
        foreach (var row in plan.Profile.Rows)
        {
            await backend.MeasureAsync(row.InputLength, Math.Min(row.OutputLength, 8), ct);
        }

        var measured = new List<MeasuredRow>(plan.Rows.Count);
        var clock = Stopwatch.StartNew();
        await ProgressDisplay.RunAsync("measuring", async progress =>
        {
            foreach (var row in plan.Rows)
            {
                progress.Report(new MeasurementProgress(ProfilePhase.Measure, measured.Count, plan.Rows.Count, null, clock.Elapsed, null));
                var timed = await backend.MeasureAsync(row.InputLength, row.OutputLength, ct);
                measured.Add(new MeasuredRow(row, timed.E2eMs, timed.TtftMs));
            }

            progress.Report(new MeasurementProgress(ProfilePhase.Finished, measured.Count, plan.Rows.Count, null, clock.Elapsed, null));
            return measured.Count;
        }, ui);
        ui.MarkupLineInterpolated($"Measured {measured.Count} requests in {clock.Elapsed.TotalSeconds:0.0} s.");
        return measured;
    }

    private static void WriteMeasurements(string dir, List<MeasuredRow> measured)
    {
        foreach (var (role, file) in new[]
                 {
                     (EvaluationRole.Profile, "profile.csv"), (EvaluationRole.HeldOut, "heldout.csv"), (EvaluationRole.HeldOutTwin, "heldout-twin.csv"),
                     (EvaluationRole.Sweep, "sweep.csv"),
                 })
        {
            CliFiles.WriteAtomically(Path.Combine(dir, file),
                w => LensCsv.WriteMeasurements(w, [.. measured.Where(m => m.Row.Role == role).Select(m => m.ToMeasurement())]));
        }
    }
}
