using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class AdviseSettings : WorkloadSettings
{
    [CommandOption("--model <FILE>")]
    [Description("The profiled model JSON (its cost curves score bucket sets that were never compiled).")]
    public string? Model { get; init; }

    [CommandOption("--count <N>")]
    [Description("With --rate: requests in the synthetic workload.")]
    [DefaultValue(2000)]
    public int Count { get; init; } = 2000;

    [CommandOption("--max-buckets <K>")]
    [Description("Budget: at most K prefill and K decode buckets.")]
    [DefaultValue(4)]
    public int MaxBuckets { get; init; } = 4;

    [CommandOption("--batch-buckets <LIST>")]
    [Description("Batch buckets whose prefixes are searched for goodput (default: powers of two up to the profiled largest).")]
    public string? BatchBuckets { get; init; }

    [CommandOption("--target-rate <RPS>")]
    [Description("Size replicas for this rate: the fewest whose simulated SLO attainment reaches --goal (needs the SLO).")]
    public double? TargetRate { get; init; }

    [CommandOption("--goal <FRACTION>")]
    [Description("SLO attainment the replica count must reach.")]
    [DefaultValue(0.99)]
    public double Goal { get; init; } = 0.99;

    [CommandOption("--granularity <N>")]
    [Description("Candidate edges are needed lengths rounded up to a multiple of N (plus the profiled edges).")]
    [DefaultValue(16)]
    public int Granularity { get; init; } = 16;

    [CommandOption("--out <FILE>")]
    [Description("Where to write advice.json (and the Pareto plot beside it, same name with .png).")]
    public string? Out { get; init; }

    [CommandOption("--json")]
    [Description("Print the advice as JSON.")]
    public bool Json { get; init; }

    [CommandOption("--emit <STACK>")]
    [Description("Also write the recommendation in a serving stack's own format, ready to paste: nxdi (neuron config JSON), vllm-neuron " +
                 "(vLLM arguments with override_neuron_config), vllm-gaudi (env lines and a bucketing file), rbln (rbln_config), furiosa (BucketConfig).")]
    public string? Emit { get; init; }

    [CommandOption("--emit-out <FILE>")]
    [Description("With --emit: where to write it (default: beside --out, e.g. advice.vllm-neuron.json; vllm-gaudi: advice.vllm-gaudi.env " +
                 "and advice.vllm-gaudi.buckets.txt).")]
    public string? EmitOut { get; init; }

    [CommandOption("--stack-config <FILE>")]
    [Description("With --emit: the deployment's present config in that stack's format; knobs the buckets do not decide (block_size, " +
                 "prefill_chunk_size, max_num_batched_tokens) are taken from it.")]
    public string? StackConfig { get; init; }

    /// <summary>Where <c>--emit</c> writes: <c>--emit-out</c>, or beside <c>--out</c>.</summary>
    internal string EmitPath =>
        EmitOut ?? Path.ChangeExtension(Out!, $".{ServingStacks.Normalize(Emit!)}.{(ServingStacks.TakesEnvLines(Emit!) ? "env" : "json")}");

    public override ValidationResult Validate()
    {
        if (Model is null || Out is null)
        {
            return ValidationResult.Error("give --model (the profiled model) and --out (advice.json)");
        }

        if ((Trace is null) == (Rate is null))
        {
            return ValidationResult.Error("give either --trace or --rate with --input-dist and --output-dist");
        }

        if (Rate is not null && (InputDist is null || OutputDist is null))
        {
            return ValidationResult.Error("--rate needs --input-dist and --output-dist (e.g. lognormal:300,0.6 and uniform:16-256)");
        }

        if (ToWorkload(null).Validate(WorkloadSettings.OptionOf, MaxCount) is { } error)
        {
            return ValidationResult.Error(error.Message);
        }

        if (MaxBuckets is < 1 or > AdviceQuery.MaxBudget)
        {
            return ValidationResult.Error($"--max-buckets must be in 1..{AdviceQuery.MaxBudget}; got {MaxBuckets}");
        }

        if (Granularity is < 1 or > 4096)
        {
            return ValidationResult.Error($"--granularity must be in 1..4096; got {Granularity}");
        }

        if (!(Goal is > 0 and <= 1))
        {
            return ValidationResult.Error($"--goal must be in (0, 1]; got {Goal}");
        }

        if (TargetRate is { } t && (!(t > 0) || !double.IsFinite(t)))
        {
            return ValidationResult.Error($"--target-rate must be a positive number; got {t}");
        }

        if (TargetRate is not null && SloTtft is null)
        {
            return ValidationResult.Error("--target-rate sizes replicas at the SLO: give --slo-ttft and --slo-tpot too");
        }

        if (Emit is null && (EmitOut is not null || StackConfig is not null))
        {
            return ValidationResult.Error("--emit-out and --stack-config go with --emit STACK");
        }

        if (Emit is not null && StackEmit.CheckTarget(Emit, "advice") is { } emitProblem)
        {
            return ValidationResult.Error(emitProblem);
        }

        if (BatchBuckets is not null)
        {
            try
            {
                _ = new BucketSet([1], [1], batch: BucketSet.ParseEdges(BatchBuckets, "batch"));
            }
            catch (BucketSetException ex)
            {
                return ValidationResult.Error($"--batch-buckets: {ex.Message}");
            }
        }

        return ValidationResult.Success();
    }

    /// <summary>Requests at most in an advised workload (each budget's edges are served in the simulation).</summary>
    internal const int MaxCount = 1_000_000;

    protected override int GeneratedCount => Count;
}

/// <summary>
/// Recommends what to compile and run for a workload (issue 12): the best bucket edges under a budget, the batch buckets with the most
/// goodput, and replicas for a target rate, all scored on what-if models from the profiled model's cost curves.
/// </summary>
public sealed class AdviseCommand : Command<AdviseSettings>
{
    public override int Execute(CommandContext context, AdviseSettings settings, CancellationToken cancellationToken)
    {
        var source = CliFiles.ReadModel(settings.Model!);
        var costs = WhatIfCommand.CostModelOf(source, settings.Model!);
        var (trace, slo) = ReadWorkload(settings, costs);
        var request = new AdviceQuery(trace, settings.MaxBuckets, slo,
            settings.BatchBuckets is null ? null : BucketSet.ParseEdges(settings.BatchBuckets, "batch"),
            settings.TargetRate, settings.Goal, settings.Granularity);
        Advice advice;
        try
        {
            advice = Advisor.Advise(costs, request);
        }
        catch (WhatIfRangeException ex)
        {
            throw new CliException($"{WhatIfCommand.OptionOf(ex)}: {ex.Message}");
        }

        var document = AdviceJson.Serialize(advice, Path.GetFileName(settings.Model!), source.Buckets);
        var plot = Path.ChangeExtension(settings.Out!, ".png");
        AdvisePlot.Write(plot, advice);
        CliFiles.WriteAtomically(settings.Out!, w => w.Write(document));
        var emitted = settings.Emit is null ? null : Emit(settings, source, advice.Recommended);
        if (settings.Json)
        {
            Console.Out.WriteLine(document);
            return LensApp.Ok;
        }

        WriteTable(advice);
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(settings.Out!)}[/] and [green]{Markup.Escape(plot)}[/]");
        if (emitted is not null)
        {
            Console.Out.Write(emitted.Text);
        }

        return LensApp.Ok;
    }

    /// <summary>The recommendation in the stack's own format (<c>--emit</c>), under the profiled model's scheduling policy.</summary>
    private static StackConfigText Emit(AdviseSettings settings, DeploymentModel source, ScoredDeployment recommended)
    {
        var stack = ServingStacks.Normalize(settings.Emit!);
        var current = settings.StackConfig is null ? StackKnobs.Empty : StackFiles.Read(stack, settings.StackConfig, false, null);
        var convention = source.Buckets.Convention;
        var buckets = source.Policy.Execution == ExecutionKind.Paged
            ? BucketSet.Paged(recommended.Prefill, recommended.Decode, convention, recommended.Batch)
            : new BucketSet(recommended.Prefill, recommended.Decode, convention, recommended.Batch);
        return StackEmit.Write(stack, buckets, source.Policy, current, settings.EmitPath, quiet: settings.Json);
    }

    private static (IReadOnlyList<TraceRequest> Trace, ServiceObjectives? Slo) ReadWorkload(AdviseSettings settings, BucketCostModel costs)
    {
        if (settings.ReadTrace() is { } rows)
        {

            if (settings.ToWorkload(rows.Rows).Validate(WorkloadSettings.OptionOf, AdviseSettings.MaxCount) is { } error)
            {
                throw new CliException(error.Message);
            }

            if (Advisor.FirstUnsupported(costs, rows.Rows) is { } bad)
            {
                throw new CliException($"{settings.Trace}:{rows.Lines[bad.Index]}: {bad.Reason}");
            }

            return (rows.Rows, settings.ToWorkload(rows.Rows).Slo);
        }

        // Generated as simulate generates it, clamped into what the cost curves can plan for; the current deployment serves it
        // clamped into its own buckets (Advisor, Workload.Fit).
        var workload = settings.ToWorkload(null);
        var generated = workload.Generate(Advisor.Supported(costs));
        if (generated.ClampNote is { } note && !settings.Json)
        {
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(note)} (the cost curves' range)[/]");
        }

        return (generated.Requests, workload.Slo);
    }

    private static void WriteTable(Advice advice)
    {
        var serving = advice.Slo is null ? "throughput (req/s)" : $"goodput (req/s, TTFT <= {advice.Slo.TtftMs}, TPOT <= {advice.Slo.TpotMs})";
        var table = new Table().Title($"{advice.Requests} requests at {F(advice.RequestsPerSecond)} req/s")
            .AddColumns("deployment", "prefill", "decode", "batch", "graphs", "mean E2E alone (ms)", "p90 E2E served (ms)", serving);
        var rows = advice.Scored.Append(advice.Recommended).ToArray(); // the recommendation last, under what it was chosen from
        foreach (var s in rows)
        {
            table.AddRow(s.Name, string.Join(',', s.Prefill), string.Join(',', s.Decode), string.Join(',', s.Batch),
                s.BucketsCompiled.ToString(CultureInfo.InvariantCulture), F(s.MeanE2eMs),
                s.Overloaded ? $"{F(s.Serving.E2e.P90)} [red]overloaded[/]" : F(s.Serving.E2e.P90),
                F(advice.Slo is null ? s.Serving.RequestsPerSecond : s.Serving.GoodputPerSecond!.Value));
        }

        AnsiConsole.Write(table);
        if (advice.CurrentReason is not null)
        {
            AnsiConsole.MarkupLine($"[yellow]current deployment not scored: {Markup.Escape(advice.CurrentReason)}[/]");
        }

        if (advice.CurrentClampNote is not null)
        {
            AnsiConsole.MarkupLine($"[yellow]current deployment: {Markup.Escape(advice.CurrentClampNote)}[/]");
        }

        if (rows.Any(s => s.Overloaded))
        {
            AnsiConsole.MarkupLine("[red]overloaded[/]: the workload arrives faster than one replica serves it (busy longer than the arrivals " +
                                   "span), so its queue grows through the trace and its p90 grows with the trace's length");
        }

        if (advice.Replicas is { } r)
        {
            AnsiConsole.MarkupLine(r.Replicas is { } n
                ? $"replicas for {F(r.TargetRate)} req/s: [bold]{n}[/] ({r.Attainment:P1} within the SLO, goal {r.Goal:P1})"
                : $"[yellow]replicas for {F(r.TargetRate)} req/s: {Markup.Escape(r.Reason ?? "")}[/]");
        }

        AnsiConsole.MarkupLine($"cost curves: A(p) {advice.PrefillCurve.Form}, leave-one-bucket-out {Pct(advice.PrefillCurve.LoboMape)}; " +
                               $"S {advice.DecodeCurve.Form}, leave-one-bucket-out {Pct(advice.DecodeCurve.LoboMape)}");
    }

    private static string Pct(double? v) => v is { } x ? x.ToString("P2", CultureInfo.InvariantCulture) : "n/a";

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
}
