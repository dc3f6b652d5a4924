using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Google.Protobuf;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Grains;
using Lens.Otlp.Proto;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Lens.Service.Tests;

/// <summary>
/// OTLP trace intake over a real loopback server: the standard OpenTelemetry .NET exporter delivers <c>llm_request</c> spans to a
/// tenant's deployment; a slowed cost cell of a batched deployment is flagged (and marked stale) after the configured windows running;
/// another tenant's spans never reach a deployment, even naming it; malformed, oversized and bomb bodies are refused and change nothing.
/// </summary>
public sealed class OtlpTrafficTests(HttpHostFixture fixture) : IClassFixture<HttpHostFixture>
{
    /// <summary>Requests per analysed window in the test host (<c>Lens:Grains:TrafficWindow</c>).</summary>
    public const int Window = 1000;

    internal static readonly int[] Batch = [1, 2, 4, 8];

    internal static DeploymentModel Truth(Func<BucketId, double> scale)
    {
        var buckets = new BucketSet(TestModels.Prefill, TestModels.Decode, DecodeConvention.AfterAppend, Batch);
        return new DeploymentModel(buckets,
            [.. TestModels.Prefill.Select(p => (p, a: (5 + (p * 0.03)) * scale(new BucketId(BucketKind.Prefill, p))))
                .Select(x => new PrefillValues(x.p, x.a, 0, x.a, 0, double.NaN))],
            [.. Batch.SelectMany(b => TestModels.Decode.Select(d =>
                new DecodeValues(d, (0.5 + (0.1 * b) + (d * 0.002)) * scale(new BucketId(BucketKind.Decode, d, b)), 0, b)))],
            RepeatStatistic.Min, 0);
    }

    [Fact]
    public async Task The_standard_OpenTelemetry_exporter_delivers_llm_request_spans_to_the_tenants_deployment()
    {
        var device = NewDevice();
        var id = (await fixture.Acme.CreateDeploymentAsync(device, TestModels.Spec("otel"))).Id;
        var source = new ActivitySource("lens-test-" + Guid.NewGuid().ToString("N")[..8]);
        using (var provider = Sdk.CreateTracerProviderBuilder()
                   .SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService("vllm").AddAttributes(new Dictionary<string, object>
                   {
                       ["lens.device"] = device,
                       ["lens.deployment"] = id,
                   }))
                   .AddSource(source.Name)
                   .AddOtlpExporter(o =>
                   {
                       o.Endpoint = new Uri(fixture.Server.HttpAddress, "v1/traces");
                       o.Protocol = OtlpExportProtocol.HttpProtobuf;
                       o.Headers = "x-api-key=" + HttpHostFixture.AcmeKey;
                   })
                   .Build())
        {
            var start = DateTimeOffset.UtcNow.AddMinutes(-1);
            for (var i = 0; i < 300; i++)
            {
                using var span = source.StartActivity("llm_request", ActivityKind.Server, default(ActivityContext), startTime: start.AddMilliseconds(i * 50));
                Assert.NotNull(span);
                span.SetTag("gen_ai.usage.prompt_tokens", 100 + i);
                span.SetTag("gen_ai.usage.completion_tokens", 20);
                span.SetTag("gen_ai.latency.time_to_first_token", 0.05);
                span.SetTag("gen_ai.latency.e2e", 0.4);
                span.SetTag("gen_ai.latency.time_in_queue", 0.001);
            }

            using (var other = source.StartActivity("tokenize")) // not an LLM request: ignored
            {
                other?.SetTag("gen_ai.usage.prompt_tokens", 3);
            }

            Assert.True(provider.ForceFlush(30_000), "the exporter did not flush");
        }

        var traffic = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal(300, traffic.Received);
        Assert.Equal(300, traffic.Pending);
        Assert.Equal(0, traffic.Analyses); // a window's worth (1,000) has not arrived
        Assert.Equal(Window, traffic.WindowSize);
        Assert.Null(traffic.Latest);
    }

    [Fact]
    public async Task The_standard_exporter_over_grpc_reaches_the_tenants_deployment_and_no_other_tenants()
    {
        var device = NewDevice();
        var id = (await fixture.Acme.CreateDeploymentAsync(device, TestModels.Spec("grpc"))).Id;
        var endpoint = new Uri($"http://127.0.0.1:{fixture.GrpcPort}");
        Export(OtlpExportProtocol.Grpc, endpoint, HttpHostFixture.AcmeKey, device, id, 40);
        Export(OtlpExportProtocol.Grpc, endpoint, HttpHostFixture.GlobexKey, device, id, 25); // names acme's deployment: rejected
        Export(OtlpExportProtocol.Grpc, endpoint, "not-a-key-0123456789", device, id, 25);   // unauthenticated: refused
        Assert.Equal(40, (await fixture.Acme.GetTrafficAsync(device, id)).Received);
    }

    /// <summary>Emits <paramref name="count"/> <c>llm_request</c> spans through a process-local provider with the standard OTLP exporter.</summary>
    private static void Export(OtlpExportProtocol protocol, Uri endpoint, string key, string device, string deployment, int count)
    {
        using var source = new ActivitySource("lens-test-" + Guid.NewGuid().ToString("N")[..8]);
        using var provider = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(ResourceBuilder.CreateEmpty().AddAttributes(new Dictionary<string, object>
            {
                ["lens.device"] = device,
                ["lens.deployment"] = deployment,
            }))
            .AddSource(source.Name)
            .AddOtlpExporter(o =>
            {
                o.Endpoint = endpoint;
                o.Protocol = protocol;
                o.Headers = "x-api-key=" + key;
            })
            .Build();
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        for (var i = 0; i < count; i++)
        {
            using var span = source.StartActivity("llm_request", ActivityKind.Server, default(ActivityContext), startTime: start.AddMilliseconds(i * 50));
            span?.SetTag("gen_ai.usage.prompt_tokens", 100 + i);
            span?.SetTag("gen_ai.usage.completion_tokens", 20);
            span?.SetTag("gen_ai.latency.time_to_first_token", 0.05);
            span?.SetTag("gen_ai.latency.e2e", 0.4);
        }

        provider.ForceFlush(30_000);
    }

    [Fact]
    public async Task A_slowed_cell_of_a_batched_deployment_is_flagged_after_the_configured_windows_and_marked_stale()
    {
        var device = NewDevice();
        var (id, profiled) = await BatchedDeploymentAsync(device, "slowed");
        var slowed = new BucketId(BucketKind.Decode, 512, 4);
        var observed = Observe(Truth(c => c == slowed ? 1.3 : 1), Traffic(profiled, 0.6, 2 * Window, 11), 0.01, 12);

        await SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, observed[..Window]);
        var first = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal(1, first.Analyses);
        Assert.Null(first.LastError);
        Assert.Empty(first.Flagged); // one window out of band flags nothing (TrafficConsecutive = 2)
        var cell = Assert.Single(first.Latest!.Cells, c => c.OutOfBand);
        Assert.Equal(slowed.ToString(), cell.Cell);
        Assert.Equal(1, cell.ConsecutiveWindows);

        await SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, observed[Window..]);
        var second = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal(2, second.Analyses);
        Assert.Equal([slowed.ToString()], second.Flagged);
        var flagged = Assert.Single(second.Latest!.Cells, c => c.Flagged);
        Assert.InRange(flagged.Shift, 0.2, 0.4);
        Assert.InRange(second.Latest.E2eMape!.Value, 0, 50);
        var buckets = await fixture.Acme.GetBucketsAsync(device, id);
        Assert.True(buckets.Single(b => b.Bucket == slowed.ToString()).Stale, "the flagged cell's bucket is marked stale");
        Assert.Equal([slowed.ToString()], buckets.Where(b => b.Stale).Select(b => b.Bucket));

        // Re-profiling flagged cells is off in this host (Lens:Grains:ReprofileFlaggedCells, the default): no run starts.
        Assert.Null(second.LastReprofile);
        Assert.Equal(ProfileState.None, (await fixture.Acme.GetProfileProgressAsync(device, id)).State);

        // Acting on it: the cell's cost estimated from the traffic is now the model's, with its provenance, in the model file, the
        // traffic report and the SDK; the other cells stay profiled.
        var truth = Truth(c => c == slowed ? 1.3 : 1);
        var trueCost = truth.StepMs(truth.Buckets.BatchIndex(4), truth.Buckets.DecodeIndex(512));
        var model = ModelJson.Deserialize(await fixture.Acme.GetModelJsonAsync(device, id), "served");
        var provenance = Assert.Single(model.Provenance);
        Assert.Equal(slowed, provenance.Key);
        Assert.Equal(ModelProvenance.Traffic, model.SourceOf(slowed));
        Assert.InRange(model.StepMs(model.Buckets.BatchIndex(4), model.Buckets.DecodeIndex(512)) / trueCost, 0.9, 1.1);
        Assert.Equal(flagged.EstimatedMs!.Value, provenance.Value.CostMs, 9);
        Assert.Equal(flagged.ProfiledMs, provenance.Value.ProfiledMs, 9);
        Assert.True(provenance.Value.Steps >= 200);
        Assert.Equal(second.Latest.StartMs, provenance.Value.WindowStartMs, 3);
        Assert.Equal(second.Latest.EndMs, provenance.Value.WindowEndMs, 3);
        Assert.Equal(ModelProvenance.Profiled, model.SourceOf(new BucketId(BucketKind.Decode, 512, 2)));
        var reported = Assert.Single((await fixture.Acme.GetTrafficAsync(device, id)).Estimates!);
        Assert.Equal((slowed.ToString(), provenance.Value.CostMs), (reported.Cell, reported.CostMs));

        // The health history has an entry per window, from traffic; the second one has the cell flagged (as stale).
        var history = await fixture.Acme.GetHealthHistoryAsync(device, id);
        var column = Array.IndexOf(history.Buckets, slowed.ToString());
        Assert.True(column >= 0);
        Assert.Equal(["traffic", "traffic"], history.Entries.Select(e => e.Source));
        Assert.All(history.Entries, e => Assert.Null(e.Reprofiling));
        Assert.Equal([1, 2], history.Entries.Select(e => e.ConsecutiveDrift[column]));
        Assert.Equal([false, true], history.Entries.Select(e => e.Stale[column]));
        Assert.Equal(1, history.Entries[^1].Drifting);
        Assert.InRange(history.Entries[^1].Shift[column]!.Value, 0.2, 0.4);
    }

    [Fact]
    public async Task After_its_baseline_windows_a_cell_is_judged_against_its_own_traffic_and_the_report_says_so()
    {
        var device = NewDevice();
        var (id, profiled) = await BatchedDeploymentAsync(device, "baseline");
        var baselineWindows = new LensGrainOptions().TrafficBaselineWindows;
        var windows = baselineWindows + 1;
        await SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id,
            Observe(Truth(_ => 1), Traffic(profiled, 0.6, windows * Window, 31), 0.01, 32));

        var status = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal(windows, status.Analyses);
        Assert.Equal(baselineWindows, status.BaselineWindows);
        Assert.Empty(status.Flagged);
        Assert.False(status.Latest!.Disturbed);
        Assert.NotNull(status.Latest.RecentCommonShift);
        var judged = status.Latest.Cells.Where(c => c.Reference == "traffic").ToArray();
        Assert.NotEmpty(judged);
        Assert.All(judged, c =>
        {
            Assert.Equal(baselineWindows, c.BaselineWindows);
            Assert.InRange(c.Baseline!.Value, -0.1, 0.1); // the traffic is what the profile says: the baseline is near 0
            Assert.False(c.OutOfBand);
        });
        Assert.All(status.Latest.Cells.Where(c => c.Reference != "traffic"), c =>
        {
            Assert.Equal("profile", c.Reference);
            // Still learning, or this window completed its baseline (it was judged against the profile before it was learned).
            Assert.InRange(c.BaselineWindows, 0, baselineWindows);
            Assert.Null(c.Baseline);
        });
    }

    [Fact]
    public async Task Unchanged_traffic_flags_nothing_and_a_device_wide_slowdown_is_the_common_shift_blamed_on_no_cell()
    {
        var device = NewDevice();
        var (id, profiled) = await BatchedDeploymentAsync(device, "steady");
        await SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, Observe(Truth(_ => 1), Traffic(profiled, 0.6, 2 * Window, 21), 0.01, 22));
        var steady = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal(2, steady.Analyses);
        Assert.Empty(steady.Flagged);
        Assert.DoesNotContain(steady.Latest!.Cells, c => c.OutOfBand);
        Assert.InRange(steady.Latest.CommonShift, -0.02, 0.05);

        var slower = Observe(Truth(_ => 1.2), Traffic(profiled, 0.6, Window, 23), 0, 24)
            .Select(r => r with { ArrivalMs = r.ArrivalMs + 1e7 }).ToArray(); // after the steady traffic
        await SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, slower);
        var shifted = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal(3, shifted.Analyses);
        Assert.InRange(shifted.Latest!.CommonShift, 0.17, 0.23);
        Assert.DoesNotContain(shifted.Latest.Cells, c => c.OutOfBand);
        Assert.DoesNotContain(await fixture.Acme.GetBucketsAsync(device, id), b => b.Stale);
    }

    [Fact]
    public async Task A_refused_batch_leaves_the_window_as_it_was()
    {
        var device = NewDevice();
        var (id, profiled) = await BatchedDeploymentAsync(device, "atomic");
        var observed = Observe(Truth(_ => 1), Traffic(profiled, 0.6, Window, 31), 0.01, 32);
        await SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, observed[..(Window / 2)]);

        // Two requests the deployment cannot serve (skipped by an analysis that holds them), then one that is no request: refused whole.
        var at = observed[Window / 2].ArrivalMs;
        var bad = new ObservedBatch([at, at, at], [100_000, 100_000, 10], [5, 5, 5], [50, 50, 0], [60, 60, 60], [double.NaN, double.NaN, double.NaN], null);
        var grain = fixture.Server.Client.GetGrain<ITrafficMonitorGrain>(new DeviceKey("acme", device).Deployment(id).Format());
        var refused = await Assert.ThrowsAsync<LensException>(() => grain.ObserveAsync(bad));
        Assert.Contains("time to first token 0 ms", refused.Message, StringComparison.Ordinal);

        // The window then holds exactly the served requests: none skipped (kept from the refused batch, they would be).
        await SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, observed[(Window / 2)..]);
        var status = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal((1, Window, Window, 0), (status.Analyses, status.Received, status.Latest!.Requests, status.Latest.Skipped));
    }

    [Fact]
    public async Task Another_tenants_spans_never_reach_a_deployment_even_naming_it()
    {
        var acmeDevice = NewDevice();
        var globexDevice = NewDevice();
        var acmeId = (await fixture.Acme.CreateDeploymentAsync(acmeDevice, TestModels.Spec("mine"))).Id;
        var globexId = (await fixture.Globex.CreateDeploymentAsync(globexDevice, TestModels.Spec("theirs"))).Id;
        var requests = Enumerable.Range(0, 10).Select(i => new ObservedRequest(1.7e12 + i, 100, 20, 50, 400)).ToArray();

        // Each tenant names the other's deployment with its own key: every span is rejected, and told so.
        var globexToAcme = await SendAsync(fixture.Http, HttpHostFixture.GlobexKey, acmeDevice, acmeId, requests);
        Assert.Equal(10, globexToAcme.PartialSuccess.RejectedSpans);
        Assert.Contains(acmeId, globexToAcme.PartialSuccess.ErrorMessage, StringComparison.Ordinal);
        var acmeToGlobex = await SendAsync(fixture.Http, HttpHostFixture.AcmeKey, globexDevice, globexId, requests);
        Assert.Equal(10, acmeToGlobex.PartialSuccess.RejectedSpans);
        Assert.Equal(0, (await fixture.Acme.GetTrafficAsync(acmeDevice, acmeId)).Received);
        Assert.Equal(0, (await fixture.Globex.GetTrafficAsync(globexDevice, globexId)).Received);

        // Their own deployments take them; another tenant's traffic report is not found.
        var own = await SendAsync(fixture.Http, HttpHostFixture.AcmeKey, acmeDevice, acmeId, requests);
        Assert.Null(own.PartialSuccess);
        Assert.Equal(10, (await fixture.Acme.GetTrafficAsync(acmeDevice, acmeId)).Received);
        var hidden = await Assert.ThrowsAsync<LensApiException>(() => fixture.Globex.GetTrafficAsync(acmeDevice, acmeId));
        Assert.Equal(404, hidden.Status);
    }

    [Fact]
    public async Task Json_and_gzip_bodies_are_taken_and_malformed_oversized_and_bomb_bodies_are_refused_changing_nothing()
    {
        var device = NewDevice();
        var id = (await fixture.Acme.CreateDeploymentAsync(device, TestModels.Spec("bodies"))).Id;
        var export = Export(device, id, [new ObservedRequest(1.7e12, 100, 20, 50, 400), new ObservedRequest(1.7e12 + 5, 100, 20, 500, 400)]);

        // JSON, gzipped: the answer is JSON too, and the invalid span (TTFT above E2E) is reported rejected.
        var json = Encoding.UTF8.GetBytes(JsonFormatter.Default.Format(export));
        using (var response = await PostAsync(HttpHostFixture.AcmeKey, Gzip(json), "application/json", gzip: true))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            var answer = JsonParser.Default.Parse<ExportTraceServiceResponse>(await response.Content.ReadAsStringAsync());
            Assert.Equal(1, answer.PartialSuccess.RejectedSpans);
            Assert.Contains("first token", answer.PartialSuccess.ErrorMessage, StringComparison.Ordinal);
        }

        Assert.Equal(1, (await fixture.Acme.GetTrafficAsync(device, id)).Received);

        // A gzip bomb: 64 MiB of zeros in ~64 KB, past the 32 MiB decompressed limit: 413 before it is all inflated.
        var bomb = Gzip(new byte[64 << 20]);
        Assert.True(bomb.Length < 1 << 20);
        using (var response = await PostAsync(HttpHostFixture.AcmeKey, bomb, "application/x-protobuf", gzip: true))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Contains("decompressed", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        foreach (var (body, type, gzip, status, reason) in new (byte[], string, bool, HttpStatusCode, string)[]
                 {
                     ([0xFF, 0xFF, 0xFF, 0x0F, 0x01], "application/x-protobuf", false, HttpStatusCode.BadRequest, "protobuf"),
                     ("{\"resourceSpans\":"u8.ToArray(), "application/json", false, HttpStatusCode.BadRequest, "JSON"),
                     ([1, 2, 3], "application/x-protobuf", true, HttpStatusCode.BadRequest, "gzip"),
                     (new byte[(4 << 20) + 1], "application/x-protobuf", false, HttpStatusCode.RequestEntityTooLarge, "larger than"),
                     (export.ToByteArray(), "text/plain", false, HttpStatusCode.UnsupportedMediaType, "Content-Type"),
                 })
        {
            using var response = await PostAsync(HttpHostFixture.AcmeKey, body, type, gzip);
            Assert.Equal(status, response.StatusCode);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(text.Contains(reason, StringComparison.OrdinalIgnoreCase), text);
        }

        using (var unauthenticated = await PostAsync(null, export.ToByteArray(), "application/x-protobuf", false))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, unauthenticated.StatusCode);
        }

        Assert.Equal(1, (await fixture.Acme.GetTrafficAsync(device, id)).Received);
    }

    private async Task<HttpResponseMessage> PostAsync(string? key, byte[] body, string type, bool gzip)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/traces") { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(type);
        if (gzip)
        {
            request.Content.Headers.ContentEncoding.Add("gzip");
        }

        if (key is not null)
        {
            request.Headers.Add("X-Api-Key", key);
        }

        return await fixture.Http.SendAsync(request);
    }

    private static byte[] Gzip(byte[] data)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.SmallestSize))
        {
            gzip.Write(data);
        }

        return buffer.ToArray();
    }

    /// <summary>A batched deployment (batch buckets 1, 2, 4, 8) fitted by importing static batches served by the unslowed truth.</summary>
    private Task<(string Id, DeploymentModel Profiled)> BatchedDeploymentAsync(string device, string name) =>
        BatchedDeploymentAsync(fixture.Acme, device, TestModels.Spec(name) with { BatchBuckets = Batch });

    /// <summary>
    /// The deployment of <paramref name="spec"/> (batch buckets 1, 2, 4, 8; its backend is what a profile run measures) fitted by
    /// importing static batches served by the unslowed truth; returns its id and served model.
    /// </summary>
    internal static async Task<(string Id, DeploymentModel Profiled)> BatchedDeploymentAsync(LensHttpClient acme, string device, DeploymentSpec spec)
    {
        var created = await acme.CreateDeploymentAsync(device, spec);
        var truth = Truth(_ => 1);
        var rows = new List<MeasurementInput>();
        long group = 0;
        foreach (var row in ProfilingPlanner.Create(truth.Buckets).Rows)
        {
            var run = ServingSimulation.StaticBatch(truth, [.. Enumerable.Repeat(new RequestPair(row.InputLength, row.OutputLength), row.Batch)]);
            rows.AddRange(run.Requests.Select(r => new MeasurementInput(row.InputLength, row.OutputLength, r.E2eMs, r.TtftMs, row.Bucket.ToString(),
                row.Batch, group)));
            group++;
        }

        await acme.ImportMeasurementsAsync(device, created.Id, new MeasurementBatch([.. rows], "traffic-profile"));
        return (created.Id, ModelJson.Deserialize(await acme.GetModelJsonAsync(device, created.Id), "served"));
    }

    /// <summary>Poisson arrivals at <paramref name="load"/> of the deployment's capacity; prompts 1..500, outputs 16..256.</summary>
    internal static TraceRequest[] Traffic(DeploymentModel profiled, double load, int count, int seed)
    {
        var rng = new Random(seed);
        var lengths = Enumerable.Range(0, count).Select(_ => (I: rng.Next(1, 501), O: rng.Next(16, 257))).ToArray();
        var saturated = ServingSimulation.Simulate(profiled, [.. lengths.Select(l => new TraceRequest(0, l.I, l.O))]);
        var rate = load * count / (saturated.Requests.Max(r => r.FinishMs) / 1000);
        var t = 0.0;
        return [.. lengths.Select(l => new TraceRequest(t += -Math.Log(1 - rng.NextDouble()) / rate * 1000, l.I, l.O))];
    }

    /// <summary>What the true device serves, with one-sided noise (interference only slows).</summary>
    internal static ObservedRequest[] Observe(DeploymentModel truth, TraceRequest[] trace, double noise, int seed)
    {
        var rng = new Random(seed);
        var run = ServingSimulation.Simulate(truth, trace);
        return [.. trace.Select((r, n) =>
        {
            var slow = 1 + Math.Abs(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()) * noise);
            var ttft = run.Requests[n].TtftMs * slow;
            return new ObservedRequest(r.ArrivalMs + 1.7e12, r.InputLength, r.OutputLength, ttft, Math.Max(ttft, run.Requests[n].E2eMs * slow));
        })];
    }

    /// <summary>Posts <paramref name="requests"/> as OTLP protobuf exports of 500 spans each; returns the last answer.</summary>
    internal static async Task<ExportTraceServiceResponse> SendAsync(HttpClient http, string key, string device, string deployment,
        IReadOnlyList<ObservedRequest> requests)
    {
        ExportTraceServiceResponse last = new();
        for (var from = 0; from < requests.Count; from += 500)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/traces")
            {
                Content = new ByteArrayContent(Export(device, deployment, requests.Skip(from).Take(500)).ToByteArray()),
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
            request.Headers.Add("X-Api-Key", key);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            last = ExportTraceServiceResponse.Parser.ParseFrom(await response.Content.ReadAsByteArrayAsync());
        }

        return last;
    }

    private static ExportTraceServiceRequest Export(string device, string deployment, IEnumerable<ObservedRequest> requests)
    {
        var scope = new ScopeSpans();
        foreach (var r in requests)
        {
            var span = new Span
            {
                Name = "llm_request",
                TraceId = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
                SpanId = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()[..8]),
                StartTimeUnixNano = (ulong)(r.ArrivalMs * 1e6),
                EndTimeUnixNano = (ulong)((r.ArrivalMs + r.E2eMs) * 1e6),
            };
            span.Attributes.Add(Int("gen_ai.usage.prompt_tokens", r.InputLength));
            span.Attributes.Add(Int("gen_ai.usage.completion_tokens", r.OutputLength));
            span.Attributes.Add(Double("gen_ai.latency.time_to_first_token", r.TtftMs / 1000));
            span.Attributes.Add(Double("gen_ai.latency.e2e", r.E2eMs / 1000));
            scope.Spans.Add(span);
        }

        var resource = new Lens.Otlp.Proto.Resource();
        resource.Attributes.Add(Text("lens.device", device));
        resource.Attributes.Add(Text("lens.deployment", deployment));
        var export = new ExportTraceServiceRequest();
        export.ResourceSpans.Add(new ResourceSpans { Resource = resource, ScopeSpans = { scope } });
        return export;
    }

    private static KeyValue Int(string key, long value) => new() { Key = key, Value = new AnyValue { IntValue = value } };

    private static KeyValue Double(string key, double value) => new() { Key = key, Value = new AnyValue { DoubleValue = value } };

    private static KeyValue Text(string key, string value) => new() { Key = key, Value = new AnyValue { StringValue = value } };

    private static string NewDevice() => "otlp-" + Guid.NewGuid().ToString("N")[..8];
}
