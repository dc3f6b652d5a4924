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
    [Description("Workload trace CSV: arrival_ms,input_len,output_len, or the Azure LLM inference trace (TIMESTAMP,ContextTokens,GeneratedTokens).")]
    public string? Trace { get; init; }

    [CommandOption("--rate <RPS>")]
    [Description("Instead of --trace: arrivals at this many requests per second (Poisson unless --burstiness), lengths uniform over the " +
                 "first model's buckets unless --input-dist/--output-dist.")]
    public double? Rate { get; init; }

    [CommandOption("--burstiness <CV>")]
    [Description("With --rate: coefficient of variation of the gaps between arrivals (Gamma); 1 is Poisson, above 1 bursty.")]
    [DefaultValue(1.0)]
    public double Burstiness { get; init; } = 1;

    [CommandOption("--input-dist <DIST>")]
    [Description("With --rate: prompt lengths, fixed:N, uniform:MIN-MAX, normal:MEAN,SD or lognormal:MEDIAN,SIGMA.")]
    public string? InputDist { get; init; }

    [CommandOption("--output-dist <DIST>")]
    [Description("With --rate: output lengths, in the same forms as --input-dist.")]
    public string? OutputDist { get; init; }

    [CommandOption("--max-num-seqs <N>")]
    [Description("Sequences in flight at most per replica (continuous batching); default the model's largest batch bucket.")]
    public int? MaxNumSeqs { get; init; }

    [CommandOption("--out <FILE>")]
    [Description("With one --model: write the trace's rows in its order plus ttft_ms,e2e_ms,tpot_ms (tpot empty when O = 1).")]
    public string? Out { get; init; }

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
    [Description("Replicas sharing one first-come first-served queue.")]
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

        if (Replicas is < 1 or > 10_000 || Count is < 1 or > TraceGenerator.MaxCount || Rate is <= 0 || Rate is { } r && !double.IsFinite(r))
        {
            return ValidationResult.Error($"--replicas must be in 1..10000, --count in 1..{TraceGenerator.MaxCount}, --rate a positive number");
        }

        if (!(Burstiness > 0 && Burstiness <= 100))
        {
            return ValidationResult.Error($"--burstiness must be in (0, 100]; got {Burstiness}");
        }

        if (MaxNumSeqs is < 1)
        {
            return ValidationResult.Error($"--max-num-seqs must be at least 1; got {MaxNumSeqs}");
        }

        if (Out is not null && Models.Length != 1)
        {
            return ValidationResult.Error("--out writes one model's per-request predictions: give exactly one --model with it");
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
                rows = LensCsv.ReadAnyTrace(reader, settings.Trace);
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
            trace = GenerateTrace(settings, models[0].Model.Buckets);
        }

        var slo = settings.SloTtft is { } t ? new ServiceObjectives(t, settings.SloTpot!.Value) : null;
        var runs = models.Select(m =>
        {
            if (settings.MaxNumSeqs > m.Model.Buckets.MaxBatch)
            {
                throw new CliException($"--max-num-seqs {settings.MaxNumSeqs} is above the largest batch bucket {m.Model.Buckets.MaxBatch} of {m.Path} " +
                                       $"(allowed 1..{m.Model.Buckets.MaxBatch})");
            }

            return (m.Path, Run: ServingSimulation.Simulate(m.Model, trace, settings.MaxNumSeqs, settings.Replicas));
        }).ToArray();
        var results = runs.Select(r => (r.Path, Result: r.Run.Summarize(slo))).ToArray();
        if (settings.Out is { } output)
        {
            CliFiles.WriteAtomically(output, w => WriteServed(w, trace, runs[0].Run));
        }

        if (settings.Json)
        {
            CliJson.Write(results.Select(r => new { model = r.Path, result = r.Result }));
            return LensApp.Ok;
        }

        var table = new Table().Title($"{trace.Count} requests, {settings.Replicas} replica(s) per deployment, continuous batching").AddColumn("");
        foreach (var (path, _) in results)
        {
            table.AddColumn(Path.GetFileName(path));
        }

        void Row(string name, Func<SimulationResult, string> cell) => table.AddRow([name, .. results.Select(r => cell(r.Result))]);
        Row("max_num_seqs", r => r.MaxNumSeqs.ToString(CultureInfo.InvariantCulture));
        Row("TTFT p50 / p90 / p99 (ms)", r => $"{F(r.Ttft.P50)} / {F(r.Ttft.P90)} / {F(r.Ttft.P99)}");
        Row("TPOT p50 / p90 / p99 (ms)", r => $"{F(r.Tpot.P50)} / {F(r.Tpot.P90)} / {F(r.Tpot.P99)}");
        Row("E2E p50 / p90 / p99 (ms)", r => $"{F(r.E2e.P50)} / {F(r.E2e.P90)} / {F(r.E2e.P99)}");
        Row("queue wait p99 (ms)", r => F(r.QueueWait.P99));
        Row("throughput (req/s)", r => F(r.RequestsPerSecond));
        Row("output tokens/s", r => F(r.OutputTokensPerSecond));
        Row("utilization", r => r.Utilization.ToString("P1", CultureInfo.InvariantCulture));
        if (slo is not null)
        {
            Row($"SLO met (TTFT <= {slo.TtftMs}, TPOT <= {slo.TpotMs})", r => r.SloAttainment!.Value.ToString("P1", CultureInfo.InvariantCulture));
            Row("goodput (req/s within SLO)", r => F(r.GoodputPerSecond!.Value));
        }

        AnsiConsole.Write(table);
        return LensApp.Ok;
    }

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    private static IReadOnlyList<TraceRequest> GenerateTrace(SimulateSettings settings, BucketSet buckets)
    {
        if (settings.InputDist is null && settings.OutputDist is null && settings.Burstiness == 1)
        {
            return WorkloadSimulation.PoissonTrace(buckets, settings.Rate!.Value, settings.Count, settings.Seed, settings.MaxOutput);
        }

        try
        {
            var maxInput = Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1);
            var trace = TraceGenerator.Generate(buckets, new ArrivalProcess(settings.Rate!.Value, settings.Burstiness), settings.InputDist, "--input-dist",
                settings.OutputDist, "--output-dist", settings.Count, settings.Seed, out var clamped, settings.MaxOutput);
            if (clamped > 0 && !settings.Json)
            {
                AnsiConsole.MarkupLine($"[yellow]{clamped} of {trace.Count} generated requests were clamped into the buckets " +
                                       $"(prompt <= {maxInput}, I + O <= {buckets.MaxSequence})[/]");
            }

            return trace;
        }
        catch (ArgumentException ex)
        {
            throw new CliException(ex.Message);
        }
    }

    /// <summary>The trace's rows in its order, with each request's simulated TTFT, E2E and TPOT.</summary>
    internal static void WriteServed(TextWriter writer, IReadOnlyList<TraceRequest> trace, ServingRun run)
    {
        writer.WriteLine("arrival_ms,input_len,output_len,ttft_ms,e2e_ms,tpot_ms");
        for (var n = 0; n < trace.Count; n++)
        {
            var (r, s) = (trace[n], run.Requests[n]);
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.ArrivalMs:R},{r.InputLength},{r.OutputLength},{s.TtftMs:0.####},{s.E2eMs:0.####},{(r.OutputLength > 1 ? s.TpotMs.ToString("0.####", CultureInfo.InvariantCulture) : "")}"));
        }
    }
}
