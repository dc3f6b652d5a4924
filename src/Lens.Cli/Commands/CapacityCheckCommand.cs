using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class CapacityCheckSettings : CommandSettings
{
    [CommandOption("--engine <PROFILE>")]
    [Description("Reference engine profile of the model: a shipped name (see 'lens engine profiles') or a JSON file; it needs batch buckets.")]
    [DefaultValue("nxdi-small-batch")]
    public string Engine { get; init; } = "nxdi-small-batch";

    [CommandOption("--degrees <LIST>")]
    [Description("Tensor-parallel degrees of the layouts, comma-separated: layout d is the profile with its layers divided by d (one chip's share of the work), on d chips.")]
    [DefaultValue("1,2")]
    public string Degrees { get; init; } = "1,2";

    [CommandOption("--requests <N>")]
    [Description("Requests in the trace (20..5000).")]
    [DefaultValue(240)]
    public int Requests { get; init; } = 240;

    [CommandOption("--load <X>")]
    [Description("The trace's rate as a multiple of what one replica of the fastest layout sustains on the mix (1..32): above 1, every layout needs several replicas.")]
    [DefaultValue(2.5)]
    public double Load { get; init; } = 2.5;

    [CommandOption("--attainment <SHARE>")]
    [Description("Share of requests that must meet the SLO, in (0, 1]].")]
    [DefaultValue(0.9)]
    public double Attainment { get; init; } = 0.9;

    [CommandOption("--input <DIST>")]
    [Description("Prompt lengths of the mix, clamped into the buckets.")]
    [DefaultValue("uniform:1-256")]
    public string Input { get; init; } = "uniform:1-256";

    [CommandOption("--output <DIST>")]
    [Description("Output lengths of the mix, clamped into the buckets.")]
    [DefaultValue("uniform:16-128")]
    public string Output { get; init; } = "uniform:16-128";

    [CommandOption("--repeats <R>")]
    [Description("Profile rounds per layout (1..10), reduced by the mean.")]
    [DefaultValue(2)]
    public int Repeats { get; init; } = 2;

    [CommandOption("--slowdown <K>")]
    [Description("The twins sleep K times each fitted cost and the trace is replayed K times slower (measured times divided by K): the same fleet in slower time, for steps shorter than the timer's millisecond (1..1000).")]
    [DefaultValue(1.0)]
    public double Slowdown { get; init; } = 1;

    [CommandOption("--price-per-chip-hour <X>")]
    [Description("Price of one chip-hour, the same for both layouts.")]
    [DefaultValue(1.0)]
    public double PricePerChipHour { get; init; } = 1;

    [CommandOption("--seed <S>")]
    [Description("Seed of the profiling plan and the trace.")]
    [DefaultValue(1)]
    public int Seed { get; init; } = 1;

    [CommandOption("--out-dir <DIR>")]
    [Description("Where the layouts' profiles, models, the trace, capacity.json, the measurements and check.json go.")]
    [DefaultValue("lens-capacity-check")]
    public string OutDir { get; init; } = "lens-capacity-check";

    [CommandOption("--json")]
    [Description("Print the result as JSON (progress goes to stderr).")]
    public bool Json { get; init; }

    /// <summary>The degrees, each dividing <paramref name="layers"/>.</summary>
    public int[] ParseDegrees(int layers)
    {
        var degrees = Degrees.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(t => int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var d) && d is >= 1 and <= 64 ? d
                : throw new CliException($"--degrees '{Degrees}': '{t}' is not a degree in 1..64")).Distinct().ToArray();
        if (degrees.Length is < 2 or > 4)
        {
            throw new CliException($"--degrees '{Degrees}': give 2 to 4 different degrees");
        }

        return degrees.FirstOrDefault(d => layers % d != 0) is var bad && bad != 0
            ? throw new CliException($"--degrees: {bad} does not divide the profile's {layers} layers")
            : degrees;
    }

    public override ValidationResult Validate()
    {
        if (Requests is < 20 or > 5000 || Repeats is < 1 or > 10)
        {
            return ValidationResult.Error($"--requests must be in 20..5000 and --repeats in 1..10; got {Requests} and {Repeats}");
        }

        if (!(Load >= 1 && Load <= 32) || !(Attainment > 0 && Attainment <= 1) || !(Slowdown >= 1 && Slowdown <= 1000))
        {
            return ValidationResult.Error($"--load must be in 1..32, --attainment in (0, 1], --slowdown in 1..1000; got {Load}, {Attainment}, {Slowdown}");
        }

        if (!(PricePerChipHour >= 0 && PricePerChipHour <= DeploymentLayout.MaxPrice))
        {
            return ValidationResult.Error($"--price-per-chip-hour must be in 0..{DeploymentLayout.MaxPrice}; got {PricePerChipHour}");
        }

        try
        {
            LengthDistribution.Parse(Input, "--input");
            LengthDistribution.Parse(Output, "--output");
        }
        catch (ArgumentException ex)
        {
            return ValidationResult.Error(ex.Message);
        }

        return ValidationResult.Success();
    }
}

/// <summary>Issue 20's end-to-end check (<see cref="CapacityCheck"/>): predicted against measured attainment of recommended fleets.</summary>
public sealed class CapacityCheckCommand : AsyncCommand<CapacityCheckSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, CapacityCheckSettings settings, CancellationToken cancellationToken)
    {
        var ui = settings.Json ? AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }) : AnsiConsole.Console;
        Directory.CreateDirectory(settings.OutDir);
        var layouts = await CapacityCheck.ProfileLayoutsAsync(settings, RepeatStatistic.Parse("mean"), ui, cancellationToken);
        var (trace, slo, rate, capacities) = CapacityCheck.Workload(settings, layouts);
        var tracePath = Path.Combine(settings.OutDir, "trace.csv");
        CapacityCheck.WriteTrace(tracePath, trace);
        ui.MarkupLineInterpolated(
            $"Trace: {trace.Count} requests at {rate:0.00}/s ({settings.Load} x {capacities.Max():0.00}/s, one replica of the fastest layout); SLO TTFT <= {slo.TtftMs:0.0} ms, TPOT <= {slo.TpotMs:0.00} ms for {slo.Attainment:P0}.");

        var candidates = layouts.Select(l => new CapacityCandidate(l.Name, l.Model)).ToArray();
        var plan = CapacityPlanner.Plan(candidates, trace, slo, new CapacityOptions(Headroom: false));
        CliFiles.WriteAtomically(Path.Combine(settings.OutDir, "capacity.json"), w => w.Write(System.Text.Json.JsonSerializer.Serialize(plan, CliJson.Options)));
        var command = string.Create(CultureInfo.InvariantCulture,
            $"lens capacity --models {string.Join(' ', layouts.Select(l => l.ModelPath))} --trace {tracePath} --slo-ttft {slo.TtftMs:R} --slo-tpot {slo.TpotMs:R} --attainment {slo.Attainment:R}");
        ui.MarkupLineInterpolated($"Plan (as {command}): {string.Join(", ", plan.Candidates.Select(c => $"{c.Model} x {c.Replicas}{(c.Meets ? "" : " (does not meet)")}{(c.Cheapest ? ", cheapest" : "")}"))}");

        var fleets = new List<FleetCheck>();
        var verdicts = new List<LayoutVerdict>();
        for (var k = 0; k < layouts.Count; k++)
        {
            var candidate = plan.Candidates[k];
            if (!candidate.Meets)
            {
                continue;
            }

            FleetCheck? fewer = null;
            foreach (var replicas in new[] { candidate.Replicas, candidate.Replicas - 1 }.Where(n => n >= 1))
            {
                ui.MarkupLineInterpolated($"Replaying the trace against {replicas} twin replica(s) of {layouts[k].Name}");
                var fleet = await CapacityCheck.ReplayAsync(settings, layouts[k], candidate, replicas, trace, slo, cancellationToken);
                fleets.Add(fleet);
                fewer = replicas < candidate.Replicas ? fleet : null;
            }

            verdicts.Add(CapacityCheck.Judge(layouts[k].Name, fleets.First(f => f.Layout == layouts[k].Name && f.Recommended), fewer, slo.Attainment));
        }

        var document = new
        {
            engine = settings.Engine,
            layouts = layouts.Select((l, i) => new { name = l.Name, chips = l.Degree, model = l.ModelPath, sustainedRequestsPerSecond = capacities[i] }),
            trace = new { path = tracePath, requests = trace.Count, requestsPerSecond = rate, load = settings.Load },
            slo = new { ttftMs = slo.TtftMs, tpotMs = slo.TpotMs, attainment = slo.Attainment },
            capacityCommand = command,
            slowdown = settings.Slowdown,
            fleets = fleets.Select(f => new
            {
                layout = f.Layout, replicas = f.Replicas, recommended = f.Recommended, chips = f.Chips, costPerHour = f.CostPerHour,
                predictedAttainment = f.PredictedAttainment, measuredAttainment = f.MeasuredAttainment, errorPoints = f.ErrorPoints,
                predictedTtftP90Ms = f.Predicted.Ttft.P90, measuredTtftP90Ms = f.MeasuredTtft.P90,
                predictedTpotP90Ms = f.Predicted.Tpot.P90, measuredTpotP90Ms = f.MeasuredTpot.P90,
                predictedE2eP90Ms = f.Predicted.E2e.P90, measuredE2eP90Ms = f.MeasuredE2e.P90, failed = f.Failed,
            }),
            verdicts = verdicts.Select(v => new { layout = v.Layout, replicas = v.Replicas, separates = v.Separates, worstErrorPoints = v.WorstErrorPoints, met = v.Met }),
            met = verdicts.Count > 0 && verdicts.All(v => v.Met),
        };
        CliFiles.WriteAtomically(Path.Combine(settings.OutDir, "check.json"), w => w.Write(System.Text.Json.JsonSerializer.Serialize(document, CliJson.Options)));
        if (settings.Json)
        {
            CliJson.Write(document);
            return LensApp.Ok;
        }

        AnsiConsole.Write(Table(fleets));
        foreach (var v in verdicts)
        {
            AnsiConsole.MarkupLineInterpolated(
                $"{v.Layout}: {(v.Separates ? $"{v.Replicas} replicas meet the SLO, {v.Replicas - 1} do not" : "the replay does not separate the fleets")}; worst attainment error {v.WorstErrorPoints:0.0} points -> {(v.Met ? "met" : "not met")}");
        }

        AnsiConsole.MarkupLineInterpolated($"Wrote {settings.OutDir}/: tp*.profile.json, tp*.json, trace.csv, capacity.json, measured-*.csv, check.json.");
        return LensApp.Ok;
    }

    private static Table Table(IEnumerable<FleetCheck> fleets)
    {
        var table = new Table().Title("attainment and p90s: predicted (LENS) / measured (twin fleet over HTTP)")
            .AddColumns("layout", "replicas", "chips", "cost/h", "attainment", "error", "TTFT p90 ms", "TPOT p90 ms", "E2E p90 ms");
        foreach (var f in fleets)
        {
            table.AddRow(f.Layout, $"{f.Replicas}{(f.Recommended ? " (rec.)" : "")}", $"{f.Chips}", f.CostPerHour is { } c ? F(c) : "-",
                $"{P(f.PredictedAttainment)} / {P(f.MeasuredAttainment)}", $"{f.ErrorPoints:0.0} pt", $"{F(f.Predicted.Ttft.P90)} / {F(f.MeasuredTtft.P90)}",
                $"{F(f.Predicted.Tpot.P90)} / {F(f.MeasuredTpot.P90)}", $"{F(f.Predicted.E2e.P90)} / {F(f.MeasuredE2e.P90)}");
        }

        return table;
    }

    private static string F(double v) => double.IsFinite(v) ? v.ToString("0.0", CultureInfo.InvariantCulture) : "-";

    private static string P(double v) => (v * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%";
}
