using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using Lens.Core;
using Lens.Otlp;
using Lens.Otlp.Proto;

namespace Lens.Benchmarks;

/// <summary>
/// Live-traffic monitoring (method.md, "Live traffic"): decoding OTLP trace exports of 512 LLM request spans (vLLM's attributes,
/// protobuf as OTLP exporters send them), and analysing a 10,000-request window of a batched deployment (batch buckets 1..8, 3 prefill
/// and 3 decode buckets) at about 60% of its capacity with one decode cell 30% slower than its profile.
/// </summary>
[MemoryDiagnoser]
public class TrafficBenchmarks
{
    private byte[] _export = null!;
    private DeploymentModel _model = null!;
    private ObservedRequest[] _window = null!;

    [GlobalSetup]
    public void Setup()
    {
        var request = new ExportTraceServiceRequest();
        var resource = new Resource();
        resource.Attributes.Add(new KeyValue { Key = "lens.device", Value = new AnyValue { StringValue = "npu-0" } });
        resource.Attributes.Add(new KeyValue { Key = "lens.deployment", Value = new AnyValue { StringValue = "llama" } });
        var scope = new ScopeSpans();
        var rng = new Random(1);
        for (var i = 0; i < 512; i++)
        {
            var span = new Span { Name = "llm_request", StartTimeUnixNano = 1_765_000_000_000_000_000UL + ((ulong)i * 1_000_000) };
            span.Attributes.Add(new KeyValue { Key = "gen_ai.request.model", Value = new AnyValue { StringValue = "llama" } });
            span.Attributes.Add(new KeyValue { Key = OtlpTraces.PromptTokens, Value = new AnyValue { IntValue = rng.Next(1, 2048) } });
            span.Attributes.Add(new KeyValue { Key = OtlpTraces.CompletionTokens, Value = new AnyValue { IntValue = rng.Next(1, 512) } });
            span.Attributes.Add(new KeyValue { Key = OtlpTraces.TimeToFirstToken, Value = new AnyValue { DoubleValue = 0.05 } });
            span.Attributes.Add(new KeyValue { Key = OtlpTraces.EndToEnd, Value = new AnyValue { DoubleValue = 1.5 } });
            span.Attributes.Add(new KeyValue { Key = OtlpTraces.TimeInQueue, Value = new AnyValue { DoubleValue = 0.001 } });
            scope.Spans.Add(span);
        }

        var rs = new ResourceSpans { Resource = resource };
        rs.ScopeSpans.Add(scope);
        request.ResourceSpans.Add(rs);
        _export = request.ToByteArray();

        var buckets = new BucketSet([128, 256, 512], [256, 512, 1024], DecodeConvention.AfterAppend, [1, 2, 4, 8]);
        DeploymentModel Model(double slow) => new(buckets,
            [.. buckets.Prefill.Select(p => new PrefillValues(p, 5 + (p * 0.03), 0.05, 4 + (p * 0.03), 0.05, double.NaN))],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d =>
                new DecodeValues(d, (0.5 + (0.1 * b) + (d * 0.002)) * (b == 4 && d == 512 ? slow : 1), 0.005, b)))],
            RepeatStatistic.Min, 0.02);
        _model = Model(1);
        var lengths = Enumerable.Range(0, 10_000).Select(_ => (I: rng.Next(1, 501), O: rng.Next(16, 257))).ToArray();
        var capacity = lengths.Length / (ServingSimulation.Simulate(_model, [.. lengths.Select(l => new TraceRequest(0, l.I, l.O))])
            .Requests.Max(r => r.FinishMs) / 1000);
        var t = 0.0;
        var trace = lengths.Select(l => new TraceRequest(t += -Math.Log(1 - rng.NextDouble()) / (0.6 * capacity) * 1000, l.I, l.O)).ToArray();
        var served = ServingSimulation.Simulate(Model(1.3), trace);
        _window = [.. trace.Select((r, n) => new ObservedRequest(r.ArrivalMs, r.InputLength, r.OutputLength,
            served.Requests[n].TtftMs * 1.01, served.Requests[n].E2eMs * 1.01))];
    }

    /// <summary>One OTLP/HTTP or OTLP/gRPC export of 512 spans: spans per second = 512 / the mean.</summary>
    [Benchmark]
    public int Decode512Spans() => OtlpTraces.FromProtobuf(_export, 10_000).Accepted;

    [Benchmark]
    public int Analyze10000RequestWindow() => TrafficAnalysis.Analyze(_model, _window).Cells.Count(c => c.OutOfBand);
}
