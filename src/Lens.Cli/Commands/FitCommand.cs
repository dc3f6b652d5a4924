using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class FitSettings : PolicySettings
{
    [CommandOption("--measurements <FILE>")]
    [Description("Measurements CSV: input_len,output_len,e2e_ms and optional ttft_ms, bucket, batch and group (grouped requests of batch buckets).")]
    public string? Measurements { get; init; }

    [CommandOption("--out <FILE>")]
    [Description("Where to write the model JSON.")]
    public string? Out { get; init; }

    [CommandOption("--statistic <NAME>")]
    [Description("How repeats of one point are reduced: min (default; timing noise only ever slows a request), median, mean, pNN.")]
    [DefaultValue("min")]
    public string Statistic { get; init; } = "min";

    [CommandOption("--level <P>")]
    [Description("Stated coverage of prediction intervals, from 0.5 to below 1 (calibrated on the measurements' repeats).")]
    [DefaultValue(IntervalCalibration.DefaultLevel)]
    public double Level { get; init; } = IntervalCalibration.DefaultLevel;

    [CommandOption("--allow-partial")]
    [Description("Write the model even when some buckets lack data (predictions touching them fail).")]
    public bool AllowPartial { get; init; }

    [CommandOption("--json")]
    [Description("Print the fitted buckets as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate()
    {
        if (Measurements is null || Out is null)
        {
            return ValidationResult.Error("--measurements and --out are required");
        }

        if (!(Level is >= 0.5 and < 1))
        {
            return ValidationResult.Error($"--level: {Level.ToString(CultureInfo.InvariantCulture)} is out of range; give a coverage from 0.5 to below 1, e.g. 0.95");
        }

        try
        {
            RepeatStatistic.Parse(Statistic);
        }
        catch (FormatException ex)
        {
            return ValidationResult.Error($"--statistic: {ex.Message}");
        }

        return base.Validate();
    }
}

public sealed class FitCommand : Command<FitSettings>
{
    public override int Execute(CommandContext context, FitSettings settings, CancellationToken cancellationToken)
    {
        var buckets = settings.BuildDeploymentBuckets();
        var statistic = RepeatStatistic.Parse(settings.Statistic);
        var rows = CliFiles.ReadMeasurements(settings.Measurements!, "--measurements");
        if (settings.HasPolicy)
        {
            return PolicyFitOutput.Fit(settings, buckets, statistic, rows);
        }

        CliFiles.EnsureInBuckets(rows, buckets);
        var fits = BucketFitter.FitAll(buckets, rows.Rows, statistic);
        var model = DeploymentModel.Compose(buckets, fits, statistic, settings.Level);
        if (!model.IsComplete && !settings.AllowPartial)
        {
            var reasons = model.Unfitted.Select(b => $"{b} ({fits.First(f => f.Bucket == b).Warning ?? "its data give no estimate"})");
            throw new CliException(
                $"{settings.Measurements}: not enough data for {string.Join(", ", reasons)}; measure the plan's rows for them, or pass --allow-partial");
        }

        CliFiles.WriteAtomically(settings.Out!, w => w.Write(ModelJson.Serialize(model)));
        if (settings.Json)
        {
            CliJson.Write(new { model.PrefillBuckets, model.DecodeBuckets, statistic = statistic.ToString(), model.RelativeNoise, model.Calibration,
                output = settings.Out });
            return LensApp.Ok;
        }

        var table = new Table().Title($"{buckets} fitted from {rows.Rows.Count} measurements ({statistic} of repeats)")
            .AddColumns("bucket", "fit (ms)", "std. error (ms)", "note");
        foreach (var p in model.PrefillBuckets)
        {
            var note = double.IsNaN(p.PlateauSpread) ? "" : $"plateau spread {p.PlateauSpread:P1}";
            table.AddRow($"prefill-{p.Edge}", $"A = {F(p.AMs)}", F(p.AStandardError), note);
        }

        foreach (var d in model.DecodeBuckets)
        {
            table.AddRow(new BucketId(BucketKind.Decode, d.Edge, d.Batch).ToString(), $"S = {F(d.StepMs)}", F(d.StepStandardError), "");
        }

        AnsiConsole.Write(table);
        var c = model.Calibration.E2e;
        AnsiConsole.MarkupLineInterpolated(c.Repeats == 0
            ? (FormattableString)$"Intervals at {model.Calibration.Level * 100:0.#}%: no repeated points to calibrate on; the fit's standard errors and relative noise only."
            : $"Intervals at {model.Calibration.Level * 100:0.#}%, calibrated on {c.Repeats} repeats: E2E excess over the {statistic} {F(c.Low * 100)}% .. +{F(c.High * 100)}%.");
        AnsiConsole.MarkupLineInterpolated($"Wrote [bold]{settings.Out}[/].");
        return LensApp.Ok;
    }

    private static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("0.####", CultureInfo.InvariantCulture);
}
