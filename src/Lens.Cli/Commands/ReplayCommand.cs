using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Lens.Measurement;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class ReplaySettings : CommandSettings
{
    [CommandOption("--endpoint <URL>")]
    [Description("The server's OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1.")]
    public string? Endpoint { get; init; }

    [CommandOption("--model <NAME>")]
    [Description("The served model's id (default: the only model the server lists).")]
    public string? Model { get; init; }

    [CommandOption("--trace <FILE>")]
    [Description("The trace: LENS CSV (arrival_ms,input_len,output_len) or the Azure LLM inference trace (TIMESTAMP,ContextTokens,GeneratedTokens).")]
    public string? Trace { get; init; }

    [CommandOption("--out <FILE>")]
    [Description("Per-request CSV in the trace's order: arrival_ms,input_len,output_len,ttft_ms,e2e_ms,tpot_ms,send_lag_ms,error.")]
    public string? Out { get; init; }

    [CommandOption("--time-scale <X>")]
    [Description("Multiplies every arrival time (0.5 replays twice as fast, 2 half as fast).")]
    [DefaultValue(1.0)]
    public double TimeScale { get; init; } = 1;

    [CommandOption("--max-concurrency <N>")]
    [Description("Requests in flight at most; a due request waits for a slot, and the wait counts in its latencies.")]
    [DefaultValue(1024)]
    public int MaxConcurrency { get; init; } = 1024;

    [CommandOption("--api-key-env <VAR>")]
    [Description("Environment variable holding a bearer key (never printed or written).")]
    public string? ApiKeyEnv { get; init; }

    [CommandOption("--token-id-max <N>")]
    [Description("Largest token id (exclusive) of the token-id prompts; keep it within the model's vocabulary.")]
    [DefaultValue(1000)]
    public int TokenIdMax { get; init; } = 1000;

    [CommandOption("--timeout <SECONDS>")]
    [Description("Limit of one request; a request past it is recorded as failed.")]
    [DefaultValue(600)]
    public int TimeoutSeconds { get; init; } = 600;

    [CommandOption("--json")]
    [Description("Print the summary as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate()
    {
        if (Endpoint is null || Trace is null || Out is null)
        {
            return ValidationResult.Error("--endpoint, --trace and --out are required");
        }

        if (EndpointOptions.Check(Endpoint) is { } bad)
        {
            return bad;
        }

        if (!double.IsFinite(TimeScale) || TimeScale < 0 || TimeScale > 1e6)
        {
            return ValidationResult.Error($"--time-scale must be a number in 0..1000000 (0 sends everything at once); got {TimeScale}");
        }

        if (MaxConcurrency is < 1 or > LoadReplayOptions.MaxConcurrencyLimit)
        {
            return ValidationResult.Error($"--max-concurrency must be in 1..{LoadReplayOptions.MaxConcurrencyLimit}; got {MaxConcurrency}");
        }

        return TokenIdMax < 2 || TimeoutSeconds < 1
            ? ValidationResult.Error("--token-id-max must be at least 2 and --timeout at least 1")
            : ValidationResult.Success();
    }
}

/// <summary>Replays a trace against a live OpenAI-compatible server at the trace's arrival times and records what each request took.</summary>
public sealed class ReplayCommand : AsyncCommand<ReplaySettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, ReplaySettings settings, CancellationToken cancellationToken)
    {
        CsvRows<TraceRequest> trace;
        using (var reader = CliFiles.Open(settings.Trace!, "--trace"))
        {
            trace = LensCsv.ReadAnyTrace(reader, settings.Trace!);
        }

        if (trace.Rows.Count == 0)
        {
            throw new CliException($"{settings.Trace}: the trace has no requests");
        }

        for (var n = 0; n < trace.Rows.Count; n++)
        {
            if (trace.Rows[n].ArrivalMs * settings.TimeScale > LoadReplayOptions.MaxArrivalMs)
            {
                throw new CliException(
                    $"{settings.Trace}:{trace.Lines[n]}: arrival {trace.Rows[n].ArrivalMs} ms times --time-scale {settings.TimeScale} is beyond the " +
                    $"longest replay, {LoadReplayOptions.MaxArrivalMs} ms (about 116 days); lower --time-scale or split the trace");
            }
        }

        // No retries: a retried request would be sent late; a failure is recorded instead.
        using var backend = EndpointOptions.CreateBackend(settings.Endpoint!, settings.Model, settings.ApiKeyEnv, settings.TokenIdMax,
            settings.TimeoutSeconds, retries: 0);

        // Ask for the model before the clock starts: the first request must not carry the model listing.
        await backend.EnsureModelAsync(cancellationToken);
        if (!settings.Json)
        {
            var span = trace.Rows.Max(r => r.ArrivalMs) * settings.TimeScale / 1000;
            AnsiConsole.MarkupLineInterpolated(
                $"Replaying {trace.Rows.Count} requests over {span:0.###} s against {backend.Describe} (at most {settings.MaxConcurrency} in flight)");
        }

        var result = await LoadReplay.RunAsync(backend, trace.Rows, new LoadReplayOptions(settings.TimeScale, settings.MaxConcurrency), cancellationToken);
        CliFiles.WriteAtomically(settings.Out!, w => LoadReplay.Write(w, result.Requests));
        var s = result.Summary;
        if (settings.Json)
        {
            CliJson.Write(new
            {
                requests = s.Requests,
                failed = s.Failed,
                ttftMs = s.Ttft,
                tpotMs = s.Tpot,
                e2eMs = s.E2e,
                durationS = s.DurationMs / 1000,
                requestsPerSecond = s.RequestsPerSecond,
                outputTokensPerSecond = s.OutputTokensPerSecond,
                meanSendLagMs = s.MeanSendLagMs,
                maxSendLagMs = s.MaxSendLagMs,
                output = settings.Out,
            });
        }
        else
        {
            var table = new Table().Title($"{s.Requests - s.Failed} of {s.Requests} requests measured (ms from each scheduled arrival)")
                .AddColumns("", "p50", "p90", "p99", "max");
            foreach (var (name, p) in new[] { ("TTFT", s.Ttft), ("TPOT", s.Tpot), ("E2E", s.E2e) })
            {
                table.AddRow(name, F(p.P50), F(p.P90), F(p.P99), F(p.Max));
            }

            AnsiConsole.Write(table);
            AnsiConsole.MarkupLineInterpolated(
                $"Throughput {F(s.RequestsPerSecond)} requests/s, {F(s.OutputTokensPerSecond)} output tokens/s over {F(s.DurationMs / 1000)} s; send lag mean {F(s.MeanSendLagMs)} ms, max {F(s.MaxSendLagMs)} ms.");
            AnsiConsole.MarkupLineInterpolated($"Wrote [bold]{settings.Out}[/].");
        }

        if (s.Failed > 0)
        {
            var first = result.Requests.Select((r, n) => (r, n)).First(x => x.r.Failed);
            Console.Error.WriteLine(
                $"error: {s.Failed} of {s.Requests} requests failed (see the error column of {settings.Out}); first, {settings.Trace}:{trace.Lines[first.n]}: {first.r.Error}");
            return LensApp.Failure;
        }

        return LensApp.Ok;
    }

    private static string F(double v) => double.IsFinite(v) ? v.ToString("0.###", CultureInfo.InvariantCulture) : "-";
}
