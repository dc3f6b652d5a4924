using Google.Protobuf;
using Lens.Core;
using Lens.Otlp.Proto;

namespace Lens.Otlp;

/// <summary>
/// Reads OTLP trace exports (the body of OTLP/HTTP <c>POST /v1/traces</c> and of OTLP/gRPC <c>TraceService/Export</c>) into the LLM
/// requests they describe (method.md, "Live traffic").
/// <list type="bullet">
/// <item>An LLM request span carries <c>gen_ai.usage.prompt_tokens</c>, <c>gen_ai.usage.completion_tokens</c>,
/// <c>gen_ai.latency.time_to_first_token</c> and <c>gen_ai.latency.e2e</c> (seconds), as vLLM's <c>llm_request</c> span does;
/// <c>gen_ai.latency.time_in_queue</c> is read when present. Its start time is the request's arrival.</item>
/// <item>Its deployment is named by the resource attributes <c>lens.device</c> and <c>lens.deployment</c> (a server sets them with
/// <c>OTEL_RESOURCE_ATTRIBUTES</c>); <c>lens.replica</c>, on the span or its resource, names the replica.</item>
/// <item>Other spans are counted and ignored. A body that does not parse, or holds more than the allowed spans, throws
/// <see cref="OtlpFormatException"/> and nothing of it is used.</item>
/// </list>
/// The work is linear in the body: one pass over the spans and their attributes.
/// </summary>
public static class OtlpTraces
{
    public const string DeviceAttribute = "lens.device";
    public const string DeploymentAttribute = "lens.deployment";
    public const string ReplicaAttribute = "lens.replica";
    public const string PromptTokens = "gen_ai.usage.prompt_tokens";
    public const string CompletionTokens = "gen_ai.usage.completion_tokens";
    public const string TimeToFirstToken = "gen_ai.latency.time_to_first_token";
    public const string EndToEnd = "gen_ai.latency.e2e";
    public const string TimeInQueue = "gen_ai.latency.time_in_queue";

    /// <summary>Longest device or deployment name taken from a resource (longer ones make the span unrouted).</summary>
    public const int MaxNameLength = 256;

    /// <summary>Reads a protobuf-encoded <c>ExportTraceServiceRequest</c>.</summary>
    public static OtlpIntake FromProtobuf(ReadOnlySpan<byte> body, int maxSpans)
    {
        ExportTraceServiceRequest request;
        try
        {
            request = ExportTraceServiceRequest.Parser.ParseFrom(body);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new OtlpFormatException($"the body is not an OTLP ExportTraceServiceRequest in protobuf: {ex.Message}");
        }

        return From(request, maxSpans);
    }

    /// <summary>Reads an <c>ExportTraceServiceRequest</c> in OTLP's JSON encoding (see <see cref="OtlpJson"/>).</summary>
    public static OtlpIntake FromJson(ReadOnlySpan<byte> utf8Body, int maxSpans) => From(OtlpJson.Parse(utf8Body, maxSpans), maxSpans);

    /// <summary>Reads a parsed export; throws <see cref="OtlpFormatException"/> when it holds more than <paramref name="maxSpans"/> spans.</summary>
    public static OtlpIntake From(ExportTraceServiceRequest request, int maxSpans)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSpans, 1);
        var spans = 0L;
        foreach (var resource in request.ResourceSpans)
        {
            foreach (var scope in resource.ScopeSpans)
            {
                spans += scope.Spans.Count;
            }
        }

        if (spans > maxSpans)
        {
            throw new OtlpFormatException($"the export holds {spans} spans; at most {maxSpans} are allowed in one request (send smaller batches)");
        }

        var intake = new OtlpIntake { Spans = (int)spans };
        foreach (var resource in request.ResourceSpans)
        {
            var attributes = resource.Resource?.Attributes;
            var device = Text(attributes, DeviceAttribute);
            var deployment = Text(attributes, DeploymentAttribute);
            var resourceReplica = Text(attributes, ReplicaAttribute);
            foreach (var scope in resource.ScopeSpans)
            {
                foreach (var span in scope.Spans)
                {
                    Read(intake, span, device, deployment, resourceReplica);
                }
            }
        }

        return intake;
    }

    private static void Read(OtlpIntake intake, Span span, string? device, string? deployment, string? resourceReplica)
    {
        AnyValue? prompt = null, completion = null, ttft = null, e2e = null, queue = null, replica = null;
        foreach (var kv in span.Attributes)
        {
            switch (kv.Key)
            {
                case PromptTokens: prompt = kv.Value; break;
                case CompletionTokens: completion = kv.Value; break;
                case TimeToFirstToken: ttft = kv.Value; break;
                case EndToEnd: e2e = kv.Value; break;
                case TimeInQueue: queue = kv.Value; break;
                case ReplicaAttribute: replica = kv.Value; break;
                default: break;
            }
        }

        if (prompt is null || completion is null || ttft is null || e2e is null)
        {
            intake.Ignored++;
            return;
        }

        if (device is not { Length: > 0 and <= MaxNameLength } || deployment is not { Length: > 0 and <= MaxNameLength })
        {
            intake.Reject(unrouted: true,
                $"span '{Cut(span.Name)}': its resource needs attributes {DeviceAttribute} and {DeploymentAttribute} (1..{MaxNameLength} characters each)");
            return;
        }

        var input = Whole(prompt);
        var output = Whole(completion);
        var ttftMs = Number(ttft) * 1000;
        var e2eMs = Number(e2e) * 1000;
        double? queueMs = queue is null ? null : Number(queue) * 1000;
        var replicaName = replica is null ? resourceReplica : Text(replica);
        var arrivalMs = span.StartTimeUnixNano / 1e6;
        if (ObservedRequest.Problem(arrivalMs, input, output, ttftMs, e2eMs, queueMs, replicaName) is { } problem)
        {
            intake.Reject(unrouted: false, $"span '{Cut(span.Name)}': {problem}");
            return;
        }

        intake.Add(new DeploymentRef(device, deployment),
            new ObservedRequest(arrivalMs, (int)input, (int)output, ttftMs, e2eMs, queueMs, replicaName));
    }

    private static string? Text(Google.Protobuf.Collections.RepeatedField<KeyValue>? attributes, string key)
    {
        if (attributes is null)
        {
            return null;
        }

        foreach (var kv in attributes)
        {
            if (kv.Key == key)
            {
                return Text(kv.Value);
            }
        }

        return null;
    }

    private static string? Text(AnyValue? value) => value?.ValueCase switch
    {
        AnyValue.ValueOneofCase.StringValue => value.StringValue,
        AnyValue.ValueOneofCase.IntValue => value.IntValue.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => null,
    };

    /// <summary>A token count: an int, a whole double, or digits in a string (exporters differ); anything else is -1 (refused).</summary>
    private static long Whole(AnyValue value) => value.ValueCase switch
    {
        AnyValue.ValueOneofCase.IntValue => value.IntValue,
        AnyValue.ValueOneofCase.DoubleValue when value.DoubleValue == Math.Floor(value.DoubleValue) && Math.Abs(value.DoubleValue) < 1e15
            => (long)value.DoubleValue,
        AnyValue.ValueOneofCase.StringValue when long.TryParse(value.StringValue, System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out var n) => n,
        _ => -1,
    };

    /// <summary>A latency in seconds: a double, an int, or a number in a string; anything else is NaN (refused).</summary>
    private static double Number(AnyValue value) => value.ValueCase switch
    {
        AnyValue.ValueOneofCase.DoubleValue => value.DoubleValue,
        AnyValue.ValueOneofCase.IntValue => value.IntValue,
        AnyValue.ValueOneofCase.StringValue when double.TryParse(value.StringValue, System.Globalization.NumberStyles.Float,
            System.Globalization.CultureInfo.InvariantCulture, out var x) => x,
        _ => double.NaN,
    };

    private static string Cut(string name) => name.Length <= 64 ? name : name[..64] + "...";
}
