using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class PredictSettings : CommandSettings
{
    [CommandOption("--model <FILE>")]
    [Description("Model JSON written by 'lens fit'.")]
    public string? Model { get; init; }

    [CommandOption("--pairs <FILE>")]
    [Description("CSV of requests (input_len,output_len) to predict; needs --out.")]
    public string? Pairs { get; init; }

    [CommandOption("--out <FILE>")]
    [Description("Where to write predictions: input_len,output_len,e2e_ms,ttft_ms,tpot_ms,e2e_low_ms,e2e_high_ms.")]
    public string? Out { get; init; }

    [CommandOption("--input-len <I>")]
    [Description("Prompt tokens of one request.")]
    public int? InputLength { get; init; }

    [CommandOption("--output-len <O>")]
    [Description("Output tokens of one request (the first one comes from prefill).")]
    public int? OutputLength { get; init; }

    [CommandOption("--static-batch <N>")]
    [Description("With --input-len/--output-len: N such requests started together (the paper's batch mode), each one's TTFT and E2E " +
                 "under the model's continuous-batching scheduler.")]
    public int? StaticBatch { get; init; }

    [CommandOption("--json")]
    [Description("Print the single prediction as JSON.")]
    public bool Json { get; init; }

    [CommandOption("--server <URL>")]
    [Description("Ask a LENS server instead of a model file (with --api-key-env, --device, --deployment).")]
    public string? Server { get; init; }

    [CommandOption("--api-key-env <VAR>")]
    [Description("With --server: the environment variable holding your tenant's API key.")]
    public string? ApiKeyEnv { get; init; }

    [CommandOption("--device <NAME>")]
    [Description("With --server: the device.")]
    public string? Device { get; init; }

    [CommandOption("--deployment <ID>")]
    [Description("With --server: the deployment id.")]
    public string? Deployment { get; init; }

    public override ValidationResult Validate()
    {
        if ((Model is null) == (Server is null))
        {
            return ValidationResult.Error("give --model (a model file) or --server (a LENS server), one of them");
        }

        if (Server is not null && Remote.Missing(Device, Deployment) is { } missing)
        {
            return ValidationResult.Error(missing);
        }

        var single = InputLength is not null || OutputLength is not null;
        if (single == (Pairs is not null))
        {
            return ValidationResult.Error("give either --input-len and --output-len, or --pairs with --out");
        }

        if (single && (InputLength is null || OutputLength is null))
        {
            return ValidationResult.Error("a single prediction needs both --input-len and --output-len");
        }

        if (StaticBatch is { } n && (!single || n is < 1 or > 4096))
        {
            return ValidationResult.Error($"--static-batch goes with --input-len/--output-len and must be in 1..4096; got {n}");
        }

        return Pairs is not null && Out is null ? ValidationResult.Error("--pairs needs --out") : ValidationResult.Success();
    }
}

public sealed class PredictCommand : AsyncCommand<PredictSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, PredictSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Server is not null)
        {
            return await PredictRemote(settings, cancellationToken);
        }

        var model = CliFiles.ReadModel(settings.Model!);
        if (settings.Pairs is not null)
        {
            CsvRows<RequestPair> pairs;
            using (var reader = CliFiles.Open(settings.Pairs, "--pairs"))
            {
                pairs = LensCsv.ReadPairs(reader, settings.Pairs);
            }

            var inputs = pairs.Rows.Select(p => p.InputLength).ToArray();
            var outputs = pairs.Rows.Select(p => p.OutputLength).ToArray();
            var results = new Prediction[inputs.Length];
            for (var n = 0; n < inputs.Length; n++)
            {
                if (model.Buckets.CheckRequest(inputs[n], outputs[n]) is { } reason)
                {
                    throw new CliException($"{settings.Pairs}:{pairs.Lines[n]}: {reason}");
                }
            }

            model.PredictMany(inputs, outputs, results);
            CliFiles.WriteAtomically(settings.Out!, w => LensCsv.WritePredictions(w, pairs.Rows, results));
            AnsiConsole.MarkupLineInterpolated(
                $"Wrote {results.Length} predictions to [bold]{settings.Out}[/] (e2e_low_ms .. e2e_high_ms: {model.Calibration.Level * 100:0.#}% intervals).");
            return LensApp.Ok;
        }

        int i = settings.InputLength!.Value, o = settings.OutputLength!.Value;
        if (settings.StaticBatch is { } batch)
        {
            model.Buckets.EnsureRequest(i, o);
            var run = ServingSimulation.StaticBatch(model, [.. Enumerable.Repeat(new RequestPair(i, o), batch)]);
            PrintStaticBatch(settings, i, o, [.. run.Requests.Select(r => r.TtftMs)], [.. run.Requests.Select(r => r.E2eMs)], null);
            return LensApp.Ok;
        }

        var p = model.Predict(i, o);
        var breakdown = model.Breakdown(i, o);
        if (settings.Json)
        {
            CliJson.Write(new
            {
                inputLen = i, outputLen = o, e2eMs = p.E2eMs, ttftMs = p.TtftMs, tpotMs = double.IsNaN(p.TpotMs) ? (double?)null : p.TpotMs,
                e2eLowMs = p.E2eLowMs, e2eHighMs = p.E2eHighMs, ttftLowMs = p.TtftLowMs, ttftHighMs = p.TtftHighMs,
                intervalLevel = model.Calibration.Level,
                breakdown = breakdown.Select(b => new { bucket = b.Bucket.ToString(), steps = b.Steps, ms = b.Ms }),
            });
            return LensApp.Ok;
        }

        Print($"I = {i}, O = {o}", p, model.Calibration.Level);
        var table = new Table().AddColumns("bucket", "steps", "ms");
        foreach (var b in breakdown)
        {
            table.AddRow(b.Bucket.ToString(), b.Steps.ToString(CultureInfo.InvariantCulture), F(b.Ms));
        }

        AnsiConsole.Write(table);
        return LensApp.Ok;
    }

    private static async Task<int> PredictRemote(PredictSettings settings, CancellationToken ct)
    {
        var client = Remote.Connect(settings.Server!, settings.ApiKeyEnv);
        string device = settings.Device!, deployment = settings.Deployment!;
        if (settings.Pairs is not null)
        {
            CsvRows<RequestPair> pairs;
            using (var reader = CliFiles.Open(settings.Pairs, "--pairs"))
            {
                pairs = LensCsv.ReadPairs(reader, settings.Pairs);
            }

            var result = await client.PredictManyAsync(device, deployment, [.. pairs.Rows.Select(p => p.InputLength)],
                [.. pairs.Rows.Select(p => p.OutputLength)], ct);
            var predictions = Enumerable.Range(0, pairs.Rows.Count).Select(n => new Prediction(result.E2eMs[n], result.TtftMs[n],
                result.TpotMs[n] ?? double.NaN, result.E2eLowMs[n], result.E2eHighMs[n])).ToArray();
            CliFiles.WriteAtomically(settings.Out!, w => LensCsv.WritePredictions(w, pairs.Rows, predictions));
            AnsiConsole.MarkupLineInterpolated($"Wrote {predictions.Length} predictions (model version {result.ModelVersion}) to [bold]{settings.Out}[/].");
            return LensApp.Ok;
        }

        if (settings.StaticBatch is { } batch)
        {
            int i = settings.InputLength!.Value, o = settings.OutputLength!.Value;
            var report = await client.PredictStaticBatchAsync(device, deployment,
                new Abstractions.StaticBatchRequest([.. Enumerable.Repeat(i, batch)], [.. Enumerable.Repeat(o, batch)]), ct);
            PrintStaticBatch(settings, i, o, report.TtftMs!, report.E2eMs!, report.ModelVersion);
            return LensApp.Ok;
        }

        var p = await client.PredictAsync(device, deployment, settings.InputLength!.Value, settings.OutputLength!.Value, ct);
        if (settings.Json)
        {
            CliJson.Write(p);
            return LensApp.Ok;
        }

        Print($"I = {p.InputLength}, O = {p.OutputLength} (model version {p.ModelVersion})",
            new Prediction(p.E2eMs, p.TtftMs, p.TpotMs ?? double.NaN, p.E2eLowMs, p.E2eHighMs, p.TtftLowMs ?? double.NaN, p.TtftHighMs ?? double.NaN),
            p.IntervalLevel);
        return LensApp.Ok;
    }

    /// <summary>A static batch, the same for a model file and a server: each request in admission order.</summary>
    private static void PrintStaticBatch(PredictSettings settings, int i, int o, double[] ttft, double[] e2e, long? version)
    {
        if (settings.Json)
        {
            CliJson.Write(new { inputLen = i, outputLen = o, batch = ttft.Length, modelVersion = version, ttftMs = ttft, e2eMs = e2e });
            return;
        }

        AnsiConsole.MarkupLineInterpolated(
            $"[bold]{ttft.Length} requests of I = {i}, O = {o} started together{(version is { } v ? $" (model version {v})" : "")}[/]");
        var table = new Table().AddColumns("request", "TTFT ms", "E2E ms", "TPOT ms");
        for (var k = 0; k < ttft.Length; k++)
        {
            table.AddRow((k + 1).ToString(CultureInfo.InvariantCulture), F(ttft[k]), F(e2e[k]), o > 1 ? F((e2e[k] - ttft[k]) / (o - 1)) : "-");
        }

        AnsiConsole.Write(table);
    }

    /// <summary>One prediction for people, the same for a model file and a server.</summary>
    private static void Print(string heading, Prediction p, double level)
    {
        var percent = (level * 100).ToString("0.#", CultureInfo.InvariantCulture);
        AnsiConsole.MarkupLineInterpolated($"[bold]{heading}[/]");
        AnsiConsole.MarkupLineInterpolated($"E2E   {F(p.E2eMs)} ms  ({percent}% interval {F(p.E2eLowMs)} .. {F(p.E2eHighMs)})");
        var ttftInterval = double.IsNaN(p.TtftLowMs) ? "" : $"  ({percent}% interval {F(p.TtftLowMs)} .. {F(p.TtftHighMs)})";
        AnsiConsole.MarkupLineInterpolated($"TTFT  {F(p.TtftMs)} ms{ttftInterval}");
        AnsiConsole.MarkupLineInterpolated($"TPOT  {(double.IsNaN(p.TpotMs) ? "- (O = 1: no decode step)" : F(p.TpotMs) + " ms")}");
    }

    private static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
}
