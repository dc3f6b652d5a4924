using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

/// <summary>Capacity's options: the shared workload options (<see cref="WorkloadSettings"/>) plus the candidates, the SLO's share and the search.</summary>
public sealed class CapacitySettings : WorkloadSettings
{
    [CommandOption("--models <FILES>")]
    [Description("Model JSON of each candidate layout: --models tp1.json tp2.json (or the option repeated).")]
    public string[] Models { get; init; } = [];

    [CommandArgument(0, "[MORE_MODELS]")]
    [Description("Further model files after --models.")]
    public string[] MoreModels { get; init; } = [];

    [CommandOption("--count <N>")]
    [Description("With --rate: requests in the generated trace.")]
    [DefaultValue(10_000)]
    public int Count { get; init; } = 10_000;

    [CommandOption("--burstiness <CV>")]
    [Description("With --rate: coefficient of variation of the gaps between arrivals; 1 is Poisson.")]
    [DefaultValue(1.0)]
    public double Burstiness { get; init; } = 1;

    [CommandOption("--time-scale <X>")]
    [Description("Scale the workload's rate: arrivals X times as frequent (times divided by X).")]
    [DefaultValue(1.0)]
    public double TimeScale { get; init; } = 1;

    [CommandOption("--attainment <SHARE>")]
    [Description("Share of requests that must meet both limits: above 0, at most 1.")]
    [DefaultValue(0.9)]
    public double Attainment { get; init; } = 0.9;

    [CommandOption("--chips <LIST>")]
    [Description("Chips per replica of each model, in the models' order (for model files that do not carry it): 1,2.")]
    public string? Chips { get; init; }

    [CommandOption("--price-per-chip-hour <X>")]
    [Description("Price of one chip for one hour, for every candidate (else each model file's own; none: cost columns say so).")]
    public double? PricePerChipHour { get; init; }

    [CommandOption("--routing <ROUTING>")]
    [Description("How the fleet routes requests: shared (one queue), round-robin, least-outstanding.")]
    [DefaultValue("shared")]
    public string Routing { get; init; } = "shared";

    [CommandOption("--max-replicas <N>")]
    [Description("The most replicas of one candidate to consider.")]
    [DefaultValue(64)]
    public int MaxReplicas { get; init; } = 64;

    [CommandOption("--max-num-seqs <N>")]
    [Description("Sequences in flight at most per replica; default each model's largest batch bucket.")]
    public int? MaxNumSeqs { get; init; }

    [CommandOption("--replicas <N>")]
    [Description("The inverse question: the largest rate N replicas of each candidate meet (no replica search).")]
    public int? Replicas { get; init; }

    [CommandOption("--no-headroom")]
    [Description("Skip the headroom search (the largest rate each chosen fleet still meets).")]
    public bool NoHeadroom { get; init; }

    [CommandOption("--out <FILE>")]
    [Description("Write the plan as JSON.")]
    public string? Out { get; init; }

    [CommandOption("--plot <FILE>")]
    [Description("Write a PNG: cost per hour against p90 E2E per candidate, the SLO, the cheapest marked.")]
    public string? Plot { get; init; }

    [CommandOption("--json")]
    [Description("Print the plan as JSON.")]
    public bool Json { get; init; }

    public IReadOnlyList<string> AllModels => [.. Models, .. MoreModels];

    public override ValidationResult Validate()
    {
        var count = AllModels.Count;
        if (count is 0 or > CapacityPlanner.CandidateLimit)
        {
            return ValidationResult.Error($"--models: give 1..{CapacityPlanner.CandidateLimit} model files; got {count}");
        }

        if ((Trace is null) == (Rate is null))
        {
            return ValidationResult.Error("give either --trace or --rate");
        }

        if (!(TimeScale > 0 && TimeScale <= 1e6))
        {
            return ValidationResult.Error($"--time-scale must be in (0, 1000000]; got {TimeScale}");
        }

        if (SloTtft is null || SloTpot is null)
        {
            return ValidationResult.Error("give --slo-ttft and --slo-tpot (ms)");
        }

        if (!(SloTtft > 0 && SloTtft <= CapacitySlo.MaxMs) || !(SloTpot > 0 && SloTpot <= CapacitySlo.MaxMs))
        {
            return ValidationResult.Error($"--slo-ttft and --slo-tpot must be in (0, {CapacitySlo.MaxMs}] ms; got {SloTtft} and {SloTpot}");
        }

        if (ToWorkload(null).Validate(OptionOf) is { } error)
        {
            return ValidationResult.Error(error.Message);
        }

        if (!(Attainment > 0 && Attainment <= 1))
        {
            return ValidationResult.Error($"--attainment must be in (0, 1]; got {Attainment}");
        }

        if (PricePerChipHour is { } p && !(p >= 0 && p <= DeploymentLayout.MaxPrice))
        {
            return ValidationResult.Error($"--price-per-chip-hour must be in 0..{DeploymentLayout.MaxPrice}; got {p}");
        }

        if (ParseRouting(Routing) is null)
        {
            return ValidationResult.Error($"--routing must be shared, round-robin or least-outstanding; got '{Routing}'");
        }

        if (MaxReplicas is < 1 or > CapacityPlanner.ReplicaLimit)
        {
            return ValidationResult.Error($"--max-replicas must be in 1..{CapacityPlanner.ReplicaLimit}; got {MaxReplicas}");
        }

        if (Replicas is < 1 or > CapacityPlanner.ReplicaLimit)
        {
            return ValidationResult.Error($"--replicas must be in 1..{CapacityPlanner.ReplicaLimit}; got {Replicas}");
        }

        if (Chips is not null)
        {
            var parts = Chips.Split(',');
            if (parts.Length != count || parts.Any(c => !int.TryParse(c, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ||
                                                        n is < 1 or > DeploymentLayout.MaxChips))
            {
                return ValidationResult.Error($"--chips must give one whole number in 1..{DeploymentLayout.MaxChips} per model ({count}), " +
                                              $"comma-separated; got '{Chips}'");
            }
        }

        return ValidationResult.Success();
    }

    protected override int GeneratedCount => Count;

    /// <summary>The shared options plus capacity's burstiness and max_num_seqs (its --replicas is the inverse question's fleet, not the workload's).</summary>
    internal override Workload ToWorkload(IReadOnlyList<TraceRequest>? trace) => base.ToWorkload(trace) with
    {
        Burstiness = Burstiness,
        MaxNumSeqs = MaxNumSeqs,
    };

    public static FleetRouting? ParseRouting(string text) => FleetRoutingNames.Parse(text);
}

/// <summary>How many of which deployment, for a workload under an SLO, at the lowest price (method.md, "Parallel layouts and cost").</summary>
public sealed class CapacityCommand : Command<CapacitySettings>
{
    public override int Execute(CommandContext context, CapacitySettings settings, CancellationToken cancellationToken)
    {
        var paths = settings.AllModels;
        var chips = settings.Chips?.Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
        var candidates = paths.Select((path, k) =>
        {
            var model = CliFiles.ReadModel(path);
            var layout = model.Layout;
            if (chips is not null)
            {
                if (layout.Chips != 1 && layout.Chips != chips[k])
                {
                    throw new CliException($"--chips gives {chips[k]} chips for {path}, whose model file says {layout.Chips}");
                }

                layout = layout with { Chips = chips[k] };
            }

            if (settings.PricePerChipHour is { } price)
            {
                layout = layout with { PricePerChipHour = price };
            }

            return new CapacityCandidate(path, model.WithLayout(layout), settings.MaxNumSeqs);
        }).ToArray();

        var trace = Workload(settings, candidates);
        var slo = new CapacitySlo(settings.SloTtft!.Value, settings.SloTpot!.Value, settings.Attainment);
        var routing = CapacitySettings.ParseRouting(settings.Routing)!.Value;
        if (settings.Replicas is { } replicas)
        {
            return Inverse(settings, candidates, trace, slo, routing, replicas);
        }

        var plan = CapacityPlanner.Plan(candidates, trace, slo, new CapacityOptions(routing, settings.MaxReplicas, !settings.NoHeadroom));
        var document = CapacityReport.Document(plan);
        if (settings.Out is { } output)
        {
            CliFiles.WriteAtomically(output, w => w.Write(System.Text.Json.JsonSerializer.Serialize(document, CliJson.Options)));
        }

        if (settings.Plot is { } png)
        {
            CapacityPlot.Write(png, plan, trace);
        }

        if (settings.Json)
        {
            CliJson.Write(document);
            return LensApp.Ok;
        }

        AnsiConsole.Write(CapacityReport.Table(plan));
        foreach (var c in plan.Candidates.Where(c => !c.Meets))
        {
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(c.Model)}: {Markup.Escape(c.Reason ?? "")}[/]");
        }

        return LensApp.Ok;
    }

    private static int Inverse(CapacitySettings settings, CapacityCandidate[] candidates, IReadOnlyList<TraceRequest> trace, CapacitySlo slo,
        FleetRouting routing, int replicas)
    {
        var rates = candidates.Select(c => (c.Name, Rate: CapacityPlanner.MaxRate(c, replicas, trace, slo, routing))).ToArray();
        var document = new
        {
            replicas,
            routing,
            offeredRequestsPerSecond = CapacityPlanner.OfferedRate(trace),
            candidates = rates.Select(r => new
            {
                model = r.Name,
                maxRequestsPerSecond = r.Rate.RequestsPerSecond,
                scale = r.Rate.Scale,
                attainment = r.Rate.Attainment,
                isLowerBound = r.Rate.IsLowerBound,
            }),
        };
        if (settings.Out is { } output)
        {
            CliFiles.WriteAtomically(output, w => w.Write(System.Text.Json.JsonSerializer.Serialize(document, CliJson.Options)));
        }

        if (settings.Json)
        {
            CliJson.Write(document);
            return LensApp.Ok;
        }

        var table = new Table().Title($"the largest rate {replicas} replica(s) meet: TTFT <= {slo.TtftMs} ms and TPOT <= {slo.TpotMs} ms " +
                                      $"for {slo.Attainment:P0} ({routing})")
            .AddColumns("model", "max req/s", "x the workload's rate", "attainment there");
        foreach (var (name, rate) in rates)
        {
            table.AddRow(Markup.Escape(name), (rate.IsLowerBound ? ">= " : "") + CapacityReport.F(rate.RequestsPerSecond),
                CapacityReport.F(rate.Scale), rate.Attainment.ToString("P1", CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);
        return LensApp.Ok;
    }

    /// <summary>
    /// The workload of the options (<see cref="WorkloadSettings"/>), as one trace every candidate serves
    /// (<see cref="CapacityPlanner.Trace(Workload, IReadOnlyList{DeploymentModel})"/>: the same trace the service plans on), at the --time-scale rate.
    /// </summary>
    private static IReadOnlyList<TraceRequest> Workload(CapacitySettings settings, CapacityCandidate[] candidates)
    {
        var rows = settings.ReadTrace();
        foreach (var c in candidates)
        {
            if (rows is not null)
            {
                settings.RefuseUnserved(rows, c.Model, c.Name);
            }

            if (settings.ToWorkload(rows?.Rows).Validate(WorkloadSettings.OptionOf, Lens.Core.Workload.MaxCount, c.Model) is { } error)
            {
                throw new CliException($"{error.Message} ({c.Name})");
            }
        }

        var served = CapacityPlanner.Trace(settings.ToWorkload(rows?.Rows), [.. candidates.Select(c => c.Model)]);
        if (served.ClampNote is { } note && !settings.Json)
        {
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(note)}[/]");
        }

        return settings.TimeScale == 1 ? served.Requests : CapacityPlanner.Scaled(served.Requests, settings.TimeScale);
    }
}
