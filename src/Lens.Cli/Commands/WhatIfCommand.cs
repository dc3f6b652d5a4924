using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class WhatIfSettings : BucketSettings
{
    [CommandOption("--model <FILE>")]
    [Description("The profiled model JSON whose cost curves predict the new buckets.")]
    public string? Model { get; init; }

    [CommandOption("--out <FILE>")]
    [Description("Where to write the what-if model JSON (same format as lens fit's, with a 'predicted' block).")]
    public string? Out { get; init; }

    [CommandOption("--json")]
    [Description("Print the curves and the written buckets as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate()
    {
        if (Model is null || Out is null)
        {
            return ValidationResult.Error("give --model (the profiled model) and --out (the what-if model to write)");
        }

        return base.Validate();
    }
}

/// <summary>
/// Writes the model of a bucket set that was never profiled, read from the cost curves of a profiled model (issue 12): profiled buckets
/// keep their values, others come from <c>A(p)</c> and <c>S(B, D)</c> with the curves' prediction errors in their standard errors.
/// </summary>
public sealed class WhatIfCommand : Command<WhatIfSettings>
{
    public override int Execute(CommandContext context, WhatIfSettings settings, CancellationToken cancellationToken)
    {
        var source = CliFiles.ReadModel(settings.Model!);
        var costs = CostModelOf(source, settings.Model!);
        var buckets = settings.BuildBuckets();
        if (settings.BuildBatch() is null)
        {
            buckets = buckets.WithBatch(source.Buckets.Batch); // the profile's batch buckets unless asked otherwise
        }

        DeploymentModel model;
        try
        {
            model = WhatIfModels.Predict(costs, buckets);
        }
        catch (WhatIfRangeException ex)
        {
            throw new CliException($"{OptionOf(ex)}: {ex.Message}");
        }

        var block = WhatIfModels.Describe(costs, buckets, Path.GetFileName(settings.Model!));
        CliFiles.WriteAtomically(settings.Out!, w => w.Write(ModelJson.Serialize(model, block)));
        if (settings.Json)
        {
            CliJson.Write(new { output = settings.Out, buckets = buckets.ToString(), predicted = block });
            return LensApp.Ok;
        }

        AnsiConsole.MarkupLine($"[green]{Markup.Escape(settings.Out!)}[/]: what-if model of {Markup.Escape(buckets.ToString())}, " +
                               $"{block.ProfiledBuckets.Count} of {buckets.AllBuckets().Count()} buckets profiled, the others predicted");
        WriteCurves(costs);
        return LensApp.Ok;
    }

    /// <summary>The cost curves of <paramref name="source"/>, or why it has too few fitted buckets for them.</summary>
    internal static BucketCostModel CostModelOf(DeploymentModel source, string path)
    {
        try
        {
            return new BucketCostModel(source);
        }
        catch (ArgumentException ex)
        {
            throw new CliException($"{path}: {ex.Message}");
        }
    }

    internal static void WriteCurves(BucketCostModel costs)
    {
        var table = new Table().AddColumns("curve", "form", "buckets", "leave-one-bucket-out error (mean / max)", "residual");
        void Row(string name, CostCurve? c)
        {
            if (c is not null)
            {
                table.AddRow(name, c.Form, c.Points.ToString(CultureInfo.InvariantCulture),
                    c.LoboMape is { } m ? $"{m:P2} / {c.LoboMax:P2}" : "n/a (too few buckets)", c.RelativeResidual.ToString("P2", CultureInfo.InvariantCulture));
            }
        }

        Row("A(p) prefill", costs.Prefill);
        Row(costs.Decode.Batched ? "S(B, D) decode step" : "S(D) decode step", costs.Decode);
        Row("TTFT(p)", costs.Ttft);
        AnsiConsole.Write(table);
    }

    internal static string OptionOf(WhatIfRangeException ex) =>
        ex.IsBatch ? "--batch-buckets" : ex.Kind == BucketKind.Prefill ? "--prefill-buckets" : "--decode-buckets";
}
