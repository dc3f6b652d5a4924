using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Tracing;
using Lens.Core;
using Lens.Measurement;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Lens.Cli.Commands;

/// <summary>
/// A serving front end's OpenTelemetry tracing, as a vLLM server configured with <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>,
/// <c>OTEL_EXPORTER_OTLP_HEADERS=x-api-key=...</c> and <c>OTEL_RESOURCE_ATTRIBUTES=lens.device=...,lens.deployment=...</c> has it:
/// one <c>llm_request</c> span per finished request with vLLM's <c>gen_ai.*</c> attributes (seconds), exported by the standard
/// OpenTelemetry .NET OTLP exporter (HTTP protobuf, batches of 512) to LENS.
/// </summary>
internal sealed class TrafficSpans : IDisposable
{
    /// <summary>Spans per export: the exporter's default batch.</summary>
    public const int ExportBatch = 512;

    private readonly ActivitySource _source;
    private readonly TracerProvider _provider;
    private readonly ExporterProblems _problems = new();

    /// <summary>The warnings and errors the OpenTelemetry SDK and OTLP exporter reported (the latest few): why spans were lost.</summary>
    public IReadOnlyCollection<string> Problems => _problems.Latest;

    public TrafficSpans(Uri lens, string apiKey, string device, string deployment, int maxQueue)
    {
        _source = new ActivitySource("lens.demo.traffic." + Guid.NewGuid().ToString("N")[..8]);
        _provider = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService("vllm").AddAttributes(new Dictionary<string, object>
            {
                ["lens.device"] = device,
                ["lens.deployment"] = deployment,
            }))
            .AddSource(_source.Name)
            .AddOtlpExporter(o =>
            {
                o.Endpoint = new Uri(lens, "v1/traces");
                o.Protocol = OtlpExportProtocol.HttpProtobuf;
                o.Headers = "x-api-key=" + apiKey;
                o.TimeoutMilliseconds = 60_000;
                o.BatchExportProcessorOptions = new BatchExportActivityProcessorOptions
                {
                    MaxExportBatchSize = ExportBatch,
                    MaxQueueSize = Math.Max(2048, maxQueue),
                    ScheduledDelayMilliseconds = 1000,
                };
            })
            .Build();
    }

    /// <summary>
    /// Records one span per replayed request that succeeded, as the server would: started when the request was sent
    /// (<paramref name="start"/> plus the request's scheduled arrival and its send lag), its TTFT and E2E from then on, ended at
    /// its E2E. (The replay counts the client's lag in its latencies; a server's span never sees it.) Returns the number recorded.
    /// </summary>
    public int Record(DateTimeOffset start, IEnumerable<ReplayedRequest> requests)
    {
        var n = 0;
        foreach (var r in requests.Where(r => !r.Failed))
        {
            var seen = ObservedRequest.SendLagProblem(r.SendLagMs, r.TtftMs) is null
                ? ObservedRequest.FromClient(r.ArrivalMs, r.InputLength, r.OutputLength, r.TtftMs, r.E2eMs, r.SendLagMs)
                : new ObservedRequest(r.ArrivalMs, r.InputLength, r.OutputLength, r.TtftMs, r.E2eMs);
            var arrival = start.AddMilliseconds(seen.ArrivalMs);
            using var span = _source.StartActivity("llm_request", ActivityKind.Server, default(ActivityContext), startTime: arrival)
                ?? throw new InvalidOperationException("the tracer provider did not sample an llm_request span");
            span.SetTag("gen_ai.request.max_tokens", r.OutputLength);
            span.SetTag("gen_ai.usage.prompt_tokens", r.InputLength);
            span.SetTag("gen_ai.usage.completion_tokens", r.OutputLength);
            span.SetTag("gen_ai.latency.time_to_first_token", seen.TtftMs / 1000);
            span.SetTag("gen_ai.latency.e2e", seen.E2eMs / 1000);
            span.SetEndTime(arrival.AddMilliseconds(seen.E2eMs).UtcDateTime);
            n++;
        }

        return n;
    }

    /// <summary>Exports everything recorded; LENS answers an export once its window, if it completed one, is analysed.</summary>
    public bool Flush(int timeoutMs = 120_000) => _provider.ForceFlush(timeoutMs);

    public void Dispose()
    {
        _provider.Dispose();
        _source.Dispose();
        _problems.Dispose();
    }

    /// <summary>
    /// Listens to the SDK's and exporter's own event sources (their self-diagnostics, otherwise written only to a file
    /// OTEL_DIAGNOSTICS.json asks for) and keeps the latest warnings and errors: an export that failed is dropped by the exporter,
    /// and this is the only place that says why.
    /// </summary>
    private sealed class ExporterProblems : EventListener
    {
        private const int Kept = 20;
        private readonly ConcurrentQueue<string> _latest = new();

        public IReadOnlyCollection<string> Latest => _latest;

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name.StartsWith("OpenTelemetry-", StringComparison.Ordinal))
            {
                EnableEvents(eventSource, EventLevel.Warning);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            // A listener also hears sources other listeners enabled (the runtime's counters): only the SDK's problems are kept.
            if (!e.EventSource.Name.StartsWith("OpenTelemetry-", StringComparison.Ordinal) || e.Level > EventLevel.Warning)
            {
                return;
            }

            var text = e.Message is { } format && e.Payload is { } payload
                ? string.Format(System.Globalization.CultureInfo.InvariantCulture, format, [.. payload])
                : e.EventName ?? e.EventId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            _latest.Enqueue($"{e.EventSource.Name}: {text}");
            while (_latest.Count > Kept && _latest.TryDequeue(out _))
            {
            }
        }
    }
}
