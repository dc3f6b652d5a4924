using System.ComponentModel;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class PlanSettings : PolicySettings
{
    [CommandOption("--out <FILE>")]
    [Description("Where to write the plan CSV (bucket,input_len,output_len,repeat,role, and batch with batch buckets).")]
    public string? Out { get; init; }

    [CommandOption("--repeats <R>")]
    [Description("Times each point is measured; 1 is the paper's two measurements per bucket.")]
    [DefaultValue(1)]
    public int Repeats { get; init; } = 1;

    [CommandOption("--max-span <N>")]
    [Description("Cap on the decode steps between a bucket's two requests, to bound device time (default: the whole bucket).")]
    public int? MaxSpan { get; init; }

    [CommandOption("--seed <S>")]
    [Description("Seed of the interleaved order; the same seed gives the same plan.")]
    [DefaultValue(0)]
    public int Seed { get; init; }

    [CommandOption("--json")]
    [Description("Print the summary as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate() =>
        Out is null ? ValidationResult.Error("--out is required: where to write the plan CSV")
        : CheckPlanOptions(Repeats, MaxSpan) is { } problem ? ValidationResult.Error(problem)
        : base.Validate();
}

public sealed class PlanCommand : Command<PlanSettings>
{
    public override int Execute(CommandContext context, PlanSettings settings, CancellationToken cancellationToken)
    {
        var buckets = settings.BuildDeploymentBuckets();
        if (settings.HasPolicy)
        {
            return PolicyPlanOutput.Write(settings, buckets);
        }

        var plan = ProfilingPlanner.Create(buckets, new PlanOptions(settings.Repeats, settings.MaxSpan, settings.Seed));
        CliFiles.WriteAtomically(settings.Out!, w => LensCsv.WritePlan(w, plan.Rows));
        var summary = new
        {
            buckets = buckets.ToString(),
            requests = plan.Cost.Requests,
            groups = plan.Rows.Count,
            batchBuckets = buckets.Batch,
            decodeSteps = plan.Cost.DecodeSteps,
            stepsPerBucketWidth = Math.Round(plan.Cost.StepsPerWidth(settings.Repeats), 4),
            output = settings.Out,
        };
        if (settings.Json)
        {
            CliJson.Write(summary);
        }
        else
        {
            if (buckets.IsBatched)
            {
                // A group's requests step together: its decode steps are counted once, like the compiled graph it exercises.
                AnsiConsole.MarkupLineInterpolated(
                    $"Wrote [bold]{plan.Rows.Count}[/] groups ({plan.Cost.Requests} requests) for {buckets.Prefill.Length} prefill and {buckets.Decode.Length} decode buckets x {buckets.Batch.Length} batch buckets ({string.Join(',', buckets.Batch)}) to [bold]{settings.Out}[/].");
                AnsiConsole.MarkupLineInterpolated(
                    $"Device time: {plan.Cost.DecodeSteps} decode steps, {summary.stepsPerBucketWidth:0.###}x one pass over every decode bucket's width per repeat and batch bucket.");
            }
            else
            {
                AnsiConsole.MarkupLineInterpolated(
                    $"Wrote [bold]{plan.Cost.Requests}[/] requests for {buckets.Prefill.Length} prefill and {buckets.Decode.Length} decode buckets to [bold]{settings.Out}[/].");
                AnsiConsole.MarkupLineInterpolated(
                    $"Device time: {plan.Cost.DecodeSteps} decode steps, {summary.stepsPerBucketWidth:0.###}x one pass over every decode bucket's width per repeat.");
            }
        }

        return LensApp.Ok;
    }
}
