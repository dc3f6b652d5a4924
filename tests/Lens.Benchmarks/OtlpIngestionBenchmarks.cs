using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using Lens.Abstractions;
using Lens.Client;
using Lens.Otlp;
using Lens.Otlp.Proto;
using Lens.Silo;
using Microsoft.Extensions.Logging;

namespace Lens.Benchmarks;

/// <summary>
/// End-to-end OTLP ingestion on one silo (issue 19, "Scale"): OTLP/HTTP protobuf exports of 512 LLM request spans each, posted by
/// <see cref="Concurrency"/> exporters at once over loopback to an embedded LENS server (Kestrel, the tenant's key, protobuf decoding,
/// routing, one traffic monitor grain call per deployment and export), spread over <see cref="Deployments"/> deployments. One
/// operation is one span: spans/s = 10^9 / the mean in ns. The deployments are not fitted, so a completed window (10,000 requests)
/// records "no model" instead of being analysed: the analysis itself is <see cref="TrafficBenchmarks.Analyze10000RequestWindow"/>.
/// </summary>
public class OtlpIngestionBenchmarks
{
    public const int SpansPerExport = 512, Exports = 256, Deployments = 8, Concurrency = 16;
    private const string Key = "bench-key-0123456789abcdef";

    private LensServer _server = null!;
    private HttpClient _http = null!;
    private byte[][] _bodies = null!;

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    private async Task SetupAsync()
    {
        _server = await LensHost.StartAsync(new LensServerOptions
        {
            SiloPort = FreePort(),
            GatewayPort = FreePort(),
            HttpPort = 0,
            ServiceId = "lens-bench-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["bench"] = Key },
            Grains = { TrafficWindow = 10_000 },
        }, b => b.Logging.ClearProviders());
        _http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Concurrency }) { BaseAddress = _server.HttpAddress };
        var lens = new LensHttpClient(_http, Key);
        _bodies = new byte[Deployments][];
        for (var d = 0; d < Deployments; d++)
        {
            var spec = new DeploymentSpec($"bench-{d}", "tiny", [16, 32, 64], [16, 32, 64, 128], new BackendSpec(BackendSpec.Reference, EngineProfile: "tiny"));
            var id = (await lens.CreateDeploymentAsync("npu-0", spec)).Id;
            _bodies[d] = Export("npu-0", id, d).ToByteArray();
        }
    }

    [Benchmark(OperationsPerInvoke = Exports * SpansPerExport)]
    public async Task Ingest()
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < Exports)
            {
                using var content = new ByteArrayContent(_bodies[i % Deployments]);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
                using var request = new HttpRequestMessage(HttpMethod.Post, "v1/traces") { Content = content };
                request.Headers.Add("X-Api-Key", Key);
                using var response = await _http.SendAsync(request);
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    throw new InvalidOperationException($"export {i}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
            }
        }));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _http.Dispose();
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    private static ExportTraceServiceRequest Export(string device, string deployment, int seed)
    {
        var resource = new Resource();
        resource.Attributes.Add(new KeyValue { Key = "lens.device", Value = new AnyValue { StringValue = device } });
        resource.Attributes.Add(new KeyValue { Key = "lens.deployment", Value = new AnyValue { StringValue = deployment } });
        var scope = new ScopeSpans();
        var rng = new Random(seed);
        for (var i = 0; i < SpansPerExport; i++)
        {
            var span = new Span
            {
                Name = "llm_request",
                TraceId = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
                SpanId = ByteString.CopyFrom(BitConverter.GetBytes((long)i + 1)),
                StartTimeUnixNano = 1_765_000_000_000_000_000UL + ((ulong)i * 50_000_000),
            };
            span.EndTimeUnixNano = span.StartTimeUnixNano + 400_000_000;
            span.Attributes.Add(new KeyValue { Key = OtlpTraces.PromptTokens, Value = new AnyValue { IntValue = rng.Next(1, 64) } });
            span.Attributes.Add(new KeyValue { Key = OtlpTraces.CompletionTokens, Value = new AnyValue { IntValue = rng.Next(1, 60) } });
            span.Attributes.Add(new KeyValue { Key = OtlpTraces.TimeToFirstToken, Value = new AnyValue { DoubleValue = 0.05 } });
            span.Attributes.Add(new KeyValue { Key = OtlpTraces.EndToEnd, Value = new AnyValue { DoubleValue = 0.4 } });
            scope.Spans.Add(span);
        }

        var request = new ExportTraceServiceRequest();
        request.ResourceSpans.Add(new ResourceSpans { Resource = resource, ScopeSpans = { scope } });
        return request;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
