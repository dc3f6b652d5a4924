using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class SimulateSettings : WorkloadSettings
{
    [CommandOption("--model <FILE>")]
    [Description("Model JSON of a deployment; repeat the option to compare deployments side by side.")]
    public string[] Models { get; init; } = [];

    [CommandOption("--burstiness <CV>")]
    [Description("With --rate: coefficient of variation of the gaps between arrivals (Gamma); 1 is Poisson, above 1 bursty.")]
    [DefaultValue(1.0)]
    public double Burstiness { get; init; } = 1;

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

    [CommandOption("--replicas <N>")]
    [Description("Replicas sharing one first-come first-served queue.")]
    [DefaultValue(1)]
    public int Replicas { get; init; } = 1;

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

        if (Out is not null && Models.Length != 1)
        {
            return ValidationResult.Error("--out writes one model's per-request predictions: give exactly one --model with it");
        }

        return ToWorkload(null).Validate(OptionOf) is { } error ? ValidationResult.Error(error.Message) : ValidationResult.Success();
    }

    protected override int GeneratedCount => Count;

    /// <summary>The shared options plus simulate's own: burstiness, output cap, replicas, max_num_seqs.</summary>
    internal override Workload ToWorkload(IReadOnlyList<TraceRequest>? trace) => base.ToWorkload(trace) with
    {
        Burstiness = Burstiness,
        MaxOutput = MaxOutput,
        Replicas = Replicas,
        MaxNumSeqs = MaxNumSeqs,
    };
}

/// <summary>Simulates a workload on one or more fitted deployments (method.md, "Beyond the paper", 5).</summary>
public sealed class SimulateCommand : Command<SimulateSettings>
{
    public override int Execute(CommandContext context, SimulateSettings settings, CancellationToken cancellationToken)
    {
        var models = settings.Models.Select(m => (Path: m, Model: CliFiles.ReadModel(m))).ToArray();
        Workload workload;
        IReadOnlyList<TraceRequest> trace;
        if (settings.ReadTrace() is { } rows)
        {
            foreach (var (path, model) in models)
            {
                settings.RefuseUnserved(rows, model, path);
            }

            workload = settings.ToWorkload(rows.Rows);
            trace = rows.Rows;
        }
        else
        {
            // Lengths by default uniform over the first model's buckets; each model serves the draws clamped into its own (counted).
            workload = settings.ToWorkload(null);
            trace = workload.Draw(models[0].Model);
        }

        var slo = workload.Slo;
        var runs = models.Select(m =>
        {
            if (workload.Validate(WorkloadSettings.OptionOf, Workload.MaxCount, m.Model) is { } error)
            {
                throw new CliException($"{error.Message} ({m.Path})");
            }

            var served = workload.Trace is null ? Workload.Fit(m.Model, trace) : workload.Generate(m.Model);
            if (served.ClampNote is { } note && !settings.Json)
            {
                AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(Path.GetFileName(m.Path))}: {Markup.Escape(note)}[/]");
            }

            return (m.Path, Served: served.Requests, Run: ServingSimulation.Simulate(m.Model, served.Requests, workload.MaxNumSeqs, workload.Replicas));
        }).ToArray();
        var results = runs.Select(r => (r.Path, Result: r.Run.Summarize(slo))).ToArray();
        if (settings.Out is { } output)
        {
            CliFiles.WriteAtomically(output, w => WriteServed(w, runs[0].Served, runs[0].Run));
        }

        if (settings.Json)
        {
            CliJson.Write(results.Select(r => new { model = r.Path, result = r.Result }));
            return LensApp.Ok;
        }

        var table = new Table().Title($"{trace.Count} requests, {workload.Replicas} replica(s) per deployment, continuous batching").AddColumn("");
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
