using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class SimulateSettings : CommandSettings
{
    [CommandOption("--model <FILE>")]
    [Description("Model JSON of a deployment; repeat the option to compare deployments side by side.")]
    public string[] Models { get; init; } = [];

    [CommandOption("--trace <FILE>")]
    [Description("Workload trace CSV: arrival_ms,input_len,output_len.")]
    public string? Trace { get; init; }

    [CommandOption("--rate <RPS>")]
    [Description("Instead of --trace: Poisson arrivals at this many requests per second, lengths uniform over the first model's buckets.")]
    public double? Rate { get; init; }

    [CommandOption("--count <N>")]
    [Description("With --rate: requests in the synthetic trace.")]
    [DefaultValue(1000)]
    public int Count { get; init; } = 1000;

    [CommandOption("--max-output <N>")]
    [Description("With --rate: cap on output lengths.")]
    public int? MaxOutput { get; init; }

    [CommandOption("--seed <S>")]
    [Description("With --rate: seed of the synthetic trace.")]
    [DefaultValue(0)]
    public int Seed { get; init; }

    [CommandOption("--replicas <N>")]
    [Description("Devices serving the trace, each one request at a time.")]
    [DefaultValue(1)]
    public int Replicas { get; init; } = 1;

    [CommandOption("--slo-ttft <MS>")]
    [Description("TTFT objective (ms); with --slo-tpot, reports the share of requests meeting both.")]
    public double? SloTtft { get; init; }

    [CommandOption("--slo-tpot <MS>")]
    [Description("TPOT objective (ms).")]
    public double? SloTpot { get; init; }

    [CommandOption("--json")]
    [Description("Print the results as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate()
    {
        if (Models.Length == 0)
        {
            return ValidationResult.Error("give at least one --model");
        }

        if ((Trace is null) == (Rate is null))
        {
            return ValidationResult.Error("give either --trace or --rate");
        }

        if (Replicas < 1 || Count < 1 || Rate is <= 0)
        {
            return ValidationResult.Error("--replicas and --count must be at least 1, --rate positive");
        }

        return (SloTtft is null) != (SloTpot is null) ? ValidationResult.Error("give --slo-ttft and --slo-tpot together") : ValidationResult.Success();
    }
}

/// <summary>Simulates a workload on one or more fitted deployments (method.md, "Beyond the paper", 5).</summary>
public sealed class SimulateCommand : Command<SimulateSettings>
{
    public override int Execute(CommandContext context, SimulateSettings settings, CancellationToken cancellationToken)
    {
        var models = settings.Models.Select(m => (Path: m, Model: CliFiles.ReadModel(m))).ToArray();
        IReadOnlyList<TraceRequest> trace;
        if (settings.Trace is not null)
        {
            CsvRows<TraceRequest> rows;
            using (var reader = CliFiles.Open(settings.Trace, "--trace"))
            {
                rows = LensCsv.ReadTrace(reader, settings.Trace);
            }

            if (rows.Rows.Count == 0)
            {
                throw new CliException($"{settings.Trace}: the trace has no requests");
            }

            foreach (var (path, model) in models)
            {
                if (WorkloadSimulation.FirstOutOfRange(model.Buckets, rows.Rows) is { } bad)
                {
                    throw new CliException($"{settings.Trace}:{rows.Lines[bad.Index]}: {bad.Reason} (model {path})");
                }
            }

            trace = rows.Rows;
        }
        else
        {
            trace = WorkloadSimulation.PoissonTrace(models[0].Model.Buckets, settings.Rate!.Value, settings.Count, settings.Seed, settings.MaxOutput);
        }

        var slo = settings.SloTtft is { } t ? new ServiceObjectives(t, settings.SloTpot!.Value) : null;
        var results = models.Select(m => (m.Path, Result: WorkloadSimulation.Run(m.Model, trace, settings.Replicas, slo))).ToArray();
        if (settings.Json)
        {
            CliJson.Write(results.Select(r => new { model = r.Path, result = r.Result }));
            return LensApp.Ok;
        }

        var table = new Table().Title($"{trace.Count} requests, {settings.Replicas} replica(s) per deployment").AddColumn("");
        foreach (var (path, _) in results)
        {
            table.AddColumn(Path.GetFileName(path));
        }

        void Row(string name, Func<SimulationResult, string> cell) => table.AddRow([name, .. results.Select(r => cell(r.Result))]);
        Row("TTFT p50 / p99 (ms)", r => $"{F(r.Ttft.P50)} / {F(r.Ttft.P99)}");
        Row("TPOT p50 / p99 (ms)", r => $"{F(r.Tpot.P50)} / {F(r.Tpot.P99)}");
        Row("E2E p50 / p99 (ms)", r => $"{F(r.E2e.P50)} / {F(r.E2e.P99)}");
        Row("queue wait p99 (ms)", r => F(r.QueueWait.P99));
        Row("throughput (req/s)", r => F(r.RequestsPerSecond));
        Row("output tokens/s", r => F(r.OutputTokensPerSecond));
        Row("utilization", r => r.Utilization.ToString("P1", CultureInfo.InvariantCulture));
        if (slo is not null)
        {
            Row($"SLO met (TTFT <= {slo.TtftMs}, TPOT <= {slo.TpotMs})", r => r.SloAttainment!.Value.ToString("P1", CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);
        return LensApp.Ok;
    }

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
}
