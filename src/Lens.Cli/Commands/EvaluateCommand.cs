using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class EvaluateSettings : CommandSettings
{
    [CommandOption("--model <FILE>")]
    [Description("Model JSON written by 'lens fit'.")]
    public string? Model { get; init; }

    [CommandOption("--measurements <FILE>")]
    [Description("Held-out measurements (not used for profiling): input_len,output_len,e2e_ms[[,ttft_ms]].")]
    public string? Measurements { get; init; }

    [CommandOption("--profiling <FILE>")]
    [Description("The profiling measurements the model was fitted on: fits the baselines on the same budget and adds them to the table.")]
    public string? Profiling { get; init; }

    [CommandOption("--json")]
    [Description("Print the error table as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate() =>
        Model is null || Measurements is null ? ValidationResult.Error("--model and --measurements are required") : ValidationResult.Success();
}

public sealed class EvaluateCommand : Command<EvaluateSettings>
{
    public override int Execute(CommandContext context, EvaluateSettings settings, CancellationToken cancellationToken)
    {
        var model = CliFiles.ReadModel(settings.Model!);
        var heldOut = CliFiles.ReadMeasurements(settings.Measurements!, "--measurements");
        CliFiles.EnsureInBuckets(heldOut, model.Buckets);
        var predictors = new List<ILatencyPredictor> { new LensPredictor(model) };
        if (settings.Profiling is not null)
        {
            var profiling = CliFiles.ReadMeasurements(settings.Profiling, "--profiling").Rows;
            predictors.Add(Baselines.SmoothRegression(profiling, model.Statistic));
            predictors.Add(Baselines.PerTokenLinear(profiling, model.Statistic));
        }

        var evaluations = predictors.Select(p => Metrics.Evaluate(p, heldOut.Rows, model.Statistic)).ToArray();
        if (settings.Json)
        {
            CliJson.Write(new
            {
                statistic = model.Statistic.ToString(),
                heldOutRequests = evaluations[0].E2e.Count,
                results = evaluations.Select(e => new { predictor = e.Predictor, e2e = e.E2e, ttft = e.Ttft, tpot = e.Tpot }),
            });
            return LensApp.Ok;
        }

        ErrorTable.Write(evaluations, $"{evaluations[0].E2e.Count} held-out requests, {model.Statistic} of repeats");
        return LensApp.Ok;
    }
}

/// <summary>The error table: one row per predictor and metric.</summary>
public static class ErrorTable
{
    public static void Write(IEnumerable<Evaluation> evaluations, string title)
    {
        var table = new Table().Title(title).AddColumns("predictor", "metric", "n", "MAPE %", "median %", "P90 %", "max %");
        foreach (var e in evaluations)
        {
            foreach (var (name, s) in new[] { ("E2E", e.E2e), ("TTFT", e.Ttft), ("TPOT", e.Tpot) })
            {
                table.AddRow(e.Predictor, name, s.Count.ToString(CultureInfo.InvariantCulture), F(s.Mean), F(s.Median), F(s.P90), F(s.Max));
            }
        }

        AnsiConsole.Write(table);
    }

    private static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("0.00", CultureInfo.InvariantCulture);
}
