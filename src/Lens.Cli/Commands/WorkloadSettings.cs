using System.ComponentModel;
using Lens.Core;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

/// <summary>The workload options simulate, advise and capacity share, mapped onto one <see cref="Workload"/> (validated and generated in Core).</summary>
public abstract class WorkloadSettings : CommandSettings
{
    [CommandOption("--trace <FILE>")]
    [Description("Workload trace CSV: arrival_ms,input_len,output_len, or the Azure LLM inference trace (TIMESTAMP,ContextTokens,GeneratedTokens).")]
    public string? Trace { get; init; }

    [CommandOption("--rate <RPS>")]
    [Description("Instead of --trace: arrivals at this many requests per second (Poisson; simulate's and capacity's --burstiness make them bursty), lengths " +
                 "from --input-dist and --output-dist (when not given, uniform over the buckets of simulate's first model, of capacity's " +
                 "candidate with the shortest sequences).")]
    public double? Rate { get; init; }

    [CommandOption("--input-dist <DIST>")]
    [Description("With --rate: prompt lengths, fixed:N, uniform:MIN-MAX, normal:MEAN,SD or lognormal:MEDIAN,SIGMA.")]
    public string? InputDist { get; init; }

    [CommandOption("--output-dist <DIST>")]
    [Description("With --rate: output lengths, in the same forms as --input-dist.")]
    public string? OutputDist { get; init; }

    [CommandOption("--seed <S>")]
    [Description("With --rate: seed of the synthetic workload (the same rate, lengths and seed give the service's trace too).")]
    [DefaultValue(0)]
    public int Seed { get; init; }

    [CommandOption("--slo-ttft <MS>")]
    [Description("TTFT objective (ms), per request; with --slo-tpot, the share of requests meeting both (simulate: and goodput).")]
    public double? SloTtft { get; init; }

    [CommandOption("--slo-tpot <MS>")]
    [Description("TPOT objective (ms).")]
    public double? SloTpot { get; init; }

    /// <summary>Requests generated with --rate (each command's --count).</summary>
    protected abstract int GeneratedCount { get; }

    /// <summary>The options as a <see cref="Workload"/>: <paramref name="trace"/> when given, else generated from --rate.</summary>
    internal virtual Workload ToWorkload(IReadOnlyList<TraceRequest>? trace) => new()
    {
        Trace = trace,
        RequestsPerSecond = trace is null ? Rate : null,
        Count = GeneratedCount,
        Seed = Seed,
        InputDist = InputDist,
        OutputDist = OutputDist,
        SloTtftMs = SloTtft,
        SloTpotMs = SloTpot,
    };

    /// <summary>The rows of --trace, or null with --rate; a trace without requests is refused.</summary>
    internal CsvRows<TraceRequest>? ReadTrace()
    {
        if (Trace is not { } path)
        {
            return null;
        }

        CsvRows<TraceRequest> rows;
        using (var reader = CliFiles.Open(path, "--trace"))
        {
            rows = LensCsv.ReadAnyTrace(reader, path);
        }

        return rows.Rows.Count == 0 ? throw new CliException($"{path}: the trace has no requests") : rows;
    }

    /// <summary>A given trace is the user's data: the first row <paramref name="buckets"/> cannot serve is refused, naming its line.</summary>
    internal void RefuseUnserved(CsvRows<TraceRequest> rows, BucketSet buckets, string model) =>
        Refuse(rows, Workload.FirstOutOfRange(buckets, rows.Rows), model);

    /// <summary>As the bucket set's overload, under the model's scheduling policy (chunked and paged bound requests their own way).</summary>
    internal void RefuseUnserved(CsvRows<TraceRequest> rows, DeploymentModel deployment, string model) =>
        Refuse(rows, Workload.FirstOutOfRange(deployment, rows.Rows), model);

    private void Refuse(CsvRows<TraceRequest> rows, (int Index, string Reason)? firstBad, string model)
    {
        if (firstBad is { } bad)
        {
            throw new CliException($"{Trace}:{rows.Lines[bad.Index]}: {bad.Reason} (model {model})");
        }
    }

    /// <summary>The CLI option of each workload field.</summary>
    internal static string OptionOf(WorkloadField field) => field switch
    {
        WorkloadField.Trace => "--trace",
        WorkloadField.Rate => "--rate",
        WorkloadField.Burstiness => "--burstiness",
        WorkloadField.Count => "--count",
        WorkloadField.InputDist => "--input-dist",
        WorkloadField.OutputDist => "--output-dist",
        WorkloadField.MaxOutput => "--max-output",
        WorkloadField.SloTtft => "--slo-ttft",
        WorkloadField.SloTpot => "--slo-tpot",
        WorkloadField.Replicas => "--replicas",
        WorkloadField.MaxNumSeqs => "--max-num-seqs",
        _ => field.ToString(),
    };
}
