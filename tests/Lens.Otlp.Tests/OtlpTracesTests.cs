using System.Text;
using Google.Protobuf;
using Lens.Core;
using Lens.Otlp.Proto;

namespace Lens.Otlp.Tests;

public sealed class OtlpTracesTests
{
    private const ulong Start = 1_765_000_000_000_000_000; // a Unix time in ns

    private static KeyValue Attr(string key, string value) => new() { Key = key, Value = new AnyValue { StringValue = value } };

    private static KeyValue Attr(string key, long value) => new() { Key = key, Value = new AnyValue { IntValue = value } };

    private static KeyValue Attr(string key, double value) => new() { Key = key, Value = new AnyValue { DoubleValue = value } };

    private static Span Llm(ulong startNs, long prompt, long completion, double ttftS, double e2eS, double? queueS = null)
    {
        var span = new Span { Name = "llm_request", StartTimeUnixNano = startNs, EndTimeUnixNano = startNs + (ulong)(e2eS * 1e9) };
        span.Attributes.Add(Attr("gen_ai.request.model", "llama"));
        span.Attributes.Add(Attr(OtlpTraces.PromptTokens, prompt));
        span.Attributes.Add(Attr(OtlpTraces.CompletionTokens, completion));
        span.Attributes.Add(Attr(OtlpTraces.TimeToFirstToken, ttftS));
        span.Attributes.Add(Attr(OtlpTraces.EndToEnd, e2eS));
        if (queueS is { } q)
        {
            span.Attributes.Add(Attr(OtlpTraces.TimeInQueue, q));
        }

        return span;
    }

    private static ResourceSpans Resource(string? device, string? deployment, params Span[] spans)
    {
        var resource = new Resource();
        resource.Attributes.Add(Attr("service.name", "vllm"));
        if (device is not null)
        {
            resource.Attributes.Add(Attr(OtlpTraces.DeviceAttribute, device));
        }

        if (deployment is not null)
        {
            resource.Attributes.Add(Attr(OtlpTraces.DeploymentAttribute, deployment));
        }

        var scope = new ScopeSpans { Scope = new InstrumentationScope { Name = "vllm" } };
        scope.Spans.Add(spans);
        var rs = new ResourceSpans { Resource = resource };
        rs.ScopeSpans.Add(scope);
        return rs;
    }

    private static ExportTraceServiceRequest Sample()
    {
        var request = new ExportTraceServiceRequest();
        request.ResourceSpans.Add(Resource("inf2", "llama-tp2",
            Llm(Start, 300, 200, 0.045, 1.25, 0.002),
            Llm(Start + 5_000_000, 17, 1, 0.020, 0.020),
            new Span { Name = "http.request", StartTimeUnixNano = Start }));
        request.ResourceSpans.Add(Resource("inf2", "llama-tp4", Llm(Start + 1_000_000, 128, 64, 0.030, 0.5)));
        request.ResourceSpans.Add(Resource(null, "llama-tp4", Llm(Start, 10, 10, 0.01, 0.1)));
        request.ResourceSpans.Add(Resource("inf2", "llama-tp4", Llm(Start, 10, 10, 0.2, 0.1)));
        return request;
    }

    private static void AssertSample(OtlpIntake intake)
    {
        Assert.Equal(6, intake.Spans);
        Assert.Equal(1, intake.Ignored);
        Assert.Equal(1, intake.Unrouted);
        Assert.Equal(1, intake.Invalid);
        Assert.Equal(3, intake.Accepted);
        Assert.Contains("lens.device", intake.FirstProblem, StringComparison.Ordinal);

        var tp2 = intake.Requests[new DeploymentRef("inf2", "llama-tp2")];
        Assert.Equal(2, tp2.Count);
        Assert.Equal(Start / 1e6, tp2[0].ArrivalMs, 6);
        Assert.Equal(300, tp2[0].InputLength);
        Assert.Equal(200, tp2[0].OutputLength);
        Assert.Equal(45, tp2[0].TtftMs, 9);
        Assert.Equal(1250, tp2[0].E2eMs, 9);
        Assert.Equal(2, tp2[0].QueueMs!.Value, 9);
        Assert.Null(tp2[1].QueueMs);
        Assert.Equal(5, tp2[1].ArrivalMs - tp2[0].ArrivalMs, 3);
        var tp4 = Assert.Single(intake.Requests[new DeploymentRef("inf2", "llama-tp4")]);
        Assert.Equal(128, tp4.InputLength);
    }

    [Fact]
    public void Protobuf_export_is_read_into_requests_per_deployment_and_every_other_span_is_counted()
    {
        AssertSample(OtlpTraces.FromProtobuf(Sample().ToByteArray(), maxSpans: 100));
    }

    [Fact]
    public void Json_export_reads_exactly_as_its_protobuf_twin()
    {
        // Google.Protobuf's formatter writes lowerCamelCase names, int64 as strings and ids in base64; OTLP JSON ids are hex, which
        // the reader skips either way.
        var json = JsonFormatter.Default.Format(Sample());
        Assert.Contains("\"startTimeUnixNano\": \"", json, StringComparison.Ordinal);
        AssertSample(OtlpTraces.FromJson(Encoding.UTF8.GetBytes(json), maxSpans: 100));
    }

    [Fact]
    public void Json_with_snake_case_names_and_numbers_for_64_bit_fields_is_accepted()
    {
        const string json = """
            {"resource_spans":[{"resource":{"attributes":[{"key":"lens.device","value":{"string_value":"gaudi"}},
              {"key":"lens.deployment","value":{"stringValue":"d1"}}]},
              "scope_spans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"llm_request",
                "start_time_unix_nano":1765000000000000000,"attributes":[
                {"key":"gen_ai.usage.prompt_tokens","value":{"intValue":"42"}},
                {"key":"gen_ai.usage.completion_tokens","value":{"int_value":7}},
                {"key":"gen_ai.latency.time_to_first_token","value":{"doubleValue":0.01}},
                {"key":"gen_ai.latency.e2e","value":{"doubleValue":0.07}},
                {"key":"lens.replica","value":{"stringValue":"r1"}},
                {"key":"extra","value":{"kvlistValue":{"values":[{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true}]}}}]}}}]}]}]}]}
            """;
        var intake = OtlpTraces.FromJson(Encoding.UTF8.GetBytes(json), 10);
        var request = Assert.Single(intake.Requests[new DeploymentRef("gaudi", "d1")]);
        Assert.Equal(new ObservedRequest(1_765_000_000_000, 42, 7, 10, 70, null, "r1"), request);
    }

    [Theory]
    [InlineData("{\"resourceSpans\": 3}", "'resourceSpans' is not an array")]
    [InlineData("[1, 2]", "not a JSON object")]
    [InlineData("{\"resourceSpans\": [", "not OTLP JSON")]
    [InlineData("{} {}", "after its top-level object")]
    [InlineData("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"startTimeUnixNano\":\"-5\"}]}]}]}", "startTimeUnixNano")]
    [InlineData("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"attributes\":[{\"value\":{}}]}]}]}]}", "no string 'key'")]
    public void Malformed_json_is_refused_with_its_reason(string body, string reason)
    {
        var ex = Assert.Throws<OtlpFormatException>(() => OtlpTraces.FromJson(Encoding.UTF8.GetBytes(body), 10));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Malformed_protobuf_is_refused()
    {
        var bytes = Sample().ToByteArray();
        var ex = Assert.Throws<OtlpFormatException>(() => OtlpTraces.FromProtobuf(bytes.AsSpan(0, bytes.Length - 3), 100));
        Assert.Contains("not an OTLP ExportTraceServiceRequest", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void More_spans_than_allowed_are_refused_in_both_encodings()
    {
        var sample = Sample();
        Assert.Contains("6 spans; at most 5", Assert.Throws<OtlpFormatException>(() => OtlpTraces.FromProtobuf(sample.ToByteArray(), 5)).Message,
            StringComparison.Ordinal);
        Assert.Contains("more than 5 spans", Assert.Throws<OtlpFormatException>(
            () => OtlpTraces.FromJson(Encoding.UTF8.GetBytes(JsonFormatter.Default.Format(sample)), 5)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 5, 0.01, 0.02, null, "prompt tokens 0")]
    [InlineData(5, -1, 0.01, 0.02, null, "completion tokens -1")]
    [InlineData(5, 5, 0.0, 0.02, null, "time to first token 0")]
    [InlineData(5, 5, 0.03, 0.02, null, "end-to-end latency 20")]
    [InlineData(5, 5, 0.01, 0.02, 0.05, "time in queue 50")]
    public void Values_that_cannot_be_a_served_request_are_counted_invalid_with_the_field(long i, long o, double ttft, double e2e, double? queue,
        string reason)
    {
        var request = new ExportTraceServiceRequest();
        request.ResourceSpans.Add(Resource("d", "x", Llm(Start, i, o, ttft, e2e, queue)));
        var intake = OtlpTraces.FromProtobuf(request.ToByteArray(), 10);
        Assert.Equal(1, intake.Invalid);
        Assert.Equal(0, intake.Accepted);
        Assert.Contains(reason, intake.FirstProblem, StringComparison.Ordinal);
    }
}
