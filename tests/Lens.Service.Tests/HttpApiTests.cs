using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Lens.Abstractions;
using Lens.Client;
using Lens.Grains;

namespace Lens.Service.Tests;

public sealed class HttpApiTests(HttpHostFixture fixture) : IClassFixture<HttpHostFixture>
{
    private readonly LensHttpClient _acme = fixture.Acme;

    [Fact]
    public async Task Missing_or_wrong_key_is_401_with_a_problem_body()
    {
        using var missing = await fixture.Http.GetAsync("v1/devices/npu/deployments");
        await AssertProblemAsync(missing, HttpStatusCode.Unauthorized, "Missing API key");

        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/devices/npu/deployments");
        request.Headers.Add("X-Api-Key", HttpHostFixture.AcmeKey + "x");
        using var wrong = await fixture.Http.SendAsync(request);
        await AssertProblemAsync(wrong, HttpStatusCode.Unauthorized, "Unknown API key");

        var ex = await Assert.ThrowsAsync<LensApiException>(() => new LensHttpClient(fixture.Http, "not-a-key-at-all").ListDeploymentsAsync("npu"));
        Assert.Equal(401, ex.Status);
    }

    [Fact]
    public async Task Create_read_profile_predict_over_http()
    {
        var device = NewDevice();
        var spec = TestModels.Spec("llama", control: device);
        var created = await _acme.CreateDeploymentAsync(device, spec);
        Assert.Equal(spec.DeploymentId, created.Id);
        Assert.Equal(created.Id, (await _acme.GetDeploymentAsync(device, created.Id)).Id);

        var unfitted = await Assert.ThrowsAsync<LensApiException>(() => _acme.PredictAsync(device, created.Id, 100, 10));
        Assert.Equal(409, unfitted.Status);

        using (var bare = new HttpRequestMessage(HttpMethod.Post, $"v1/devices/{device}/deployments/{created.Id}/profile"))
        {
            bare.Headers.Add("X-Api-Key", HttpHostFixture.AcmeKey);
            using var started = await fixture.Http.SendAsync(bare); // no body: every bucket
            Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        }

        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var done = await _acme.WaitForProfileAsync(device, created.Id, TimeSpan.FromMilliseconds(50), wait.Token);
        Assert.Equal(ProfileState.Completed, done.State);

        TestModels.AssertSameModel(TestModels.Source(), await _acme.GetModelJsonAsync(device, created.Id));
        var p = await _acme.PredictAsync(device, created.Id, 100, 10);
        Assert.Equal(TestModels.Source().Predict(100, 10).E2eMs, p.E2eMs, 9);
        var batch = await _acme.PredictManyAsync(device, created.Id, [100, 1], [10, 1]);
        Assert.Equal(2, batch.E2eMs.Length);

        // Telemetry is intake only: stored, but fits and versions do not move.
        var before = await _acme.GetBucketsAsync(device, created.Id);
        var intake = await _acme.ReportTelemetryAsync(device, created.Id, new MeasurementBatch([new MeasurementInput(100, 10, 123.4, 21)], "obs1"));
        Assert.Equal(1, intake.Added);
        var after = await _acme.GetBucketsAsync(device, created.Id);
        Assert.Equal(before.Select(b => (b.Bucket, b.Version, b.StepMs)), after.Select(b => (b.Bucket, b.Version, b.StepMs)));
        Assert.Equal(1, after.Sum(b => b.TelemetryCount));

        using var openApi = await fixture.Http.GetAsync("openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, openApi.StatusCode);
        var document = await openApi.Content.ReadAsStringAsync();
        Assert.Contains("/v1/devices/{device}/deployments/{deployment}/predict", document, StringComparison.Ordinal);
        Assert.Contains("\"/v1/traces\"", document, StringComparison.Ordinal);
        Assert.Contains("/v1/devices/{device}/deployments/{deployment}/traffic", document, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_reference_engine_is_profiled_end_to_end()
    {
        var device = NewDevice();
        var spec = new DeploymentSpec("tiny", "reference-tiny", [16, 32, 64], [16, 32, 64, 128],
            new BackendSpec(BackendSpec.Reference, EngineProfile: "tiny"));
        var id = (await _acme.CreateDeploymentAsync(device, spec)).Id;
        await _acme.StartProfileAsync(device, id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var done = await _acme.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token);
        Assert.Equal(ProfileState.Completed, done.State);
        Assert.True(Core.ModelJson.Deserialize(await _acme.GetModelJsonAsync(device, id), "served").IsComplete);
        Assert.True((await _acme.PredictAsync(device, id, 20, 30)).E2eMs > 0);

        // A profile that is not shipped (or a path) is refused when the deployment is created or when profiling starts.
        var path = await Assert.ThrowsAsync<LensApiException>(() => _acme.CreateDeploymentAsync(device,
            spec with { Name = "other", Backend = new BackendSpec(BackendSpec.Reference, EngineProfile: "../etc/passwd") }));
        Assert.Contains("backend.engineProfile", path.Errors.Keys);
        var unknown = (await _acme.CreateDeploymentAsync(device, spec with { Name = "unknown", Backend = new BackendSpec(BackendSpec.Reference, EngineProfile: "huge") })).Id;
        await _acme.StartProfileAsync(device, unknown);
        var failed = await _acme.WaitForProfileAsync(device, unknown, TimeSpan.FromMilliseconds(50), wait.Token);
        Assert.Equal(ProfileState.Failed, failed.State);
        Assert.Contains("neither shipped", failed.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_free_endpoint_or_key_variable_in_a_spec_is_refused_by_field()
    {
        var spec = TestModels.Spec("vllm") with
        {
            Backend = new BackendSpec(BackendSpec.OpenAi, "http://127.0.0.1:9/v1/", "m", ApiKeyEnvironmentVariable: "AZURE_STORAGE_KEY"),
        };
        var ex = await Assert.ThrowsAsync<LensApiException>(() => _acme.CreateDeploymentAsync(NewDevice(), spec));
        Assert.Equal(400, ex.Status);
        Assert.Contains("backend.apiKeyEnvironmentVariable", ex.Errors.Keys);
        Assert.Contains("backend.endpoint", ex.Errors.Keys);
        Assert.Contains("backend.name", ex.Errors.Keys);
    }

    [Fact]
    public async Task Import_places_measurements_and_is_idempotent()
    {
        var device = NewDevice();
        var id = (await _acme.CreateDeploymentAsync(device, TestModels.Spec("llama"))).Id;
        var source = TestModels.Source();
        var rows = TestModels.Spec("llama").CreatePlan().Rows;
        var batch = new MeasurementBatch([.. rows.Select(r => new MeasurementInput(r.InputLength, r.OutputLength,
            source.Predict(r.InputLength, r.OutputLength).E2eMs))], "import1");
        var first = await _acme.ImportMeasurementsAsync(device, id, batch);
        Assert.Equal(rows.Count, first.Added);
        var again = await _acme.ImportMeasurementsAsync(device, id, batch);
        Assert.Equal(0, again.Added);
        Assert.Equal(rows.Count, again.Duplicates);
        Assert.Equal(first.ModelVersion, again.ModelVersion);
        TestModels.AssertSameModel(source, await _acme.GetModelJsonAsync(device, id));
    }

    [Fact]
    public async Task Served_intervals_are_calibrated_on_the_imported_repeats_and_state_their_level()
    {
        var device = NewDevice();
        var spec = TestModels.Spec("llama");
        var id = (await _acme.CreateDeploymentAsync(device, spec)).Id;
        var source = TestModels.Source();
        double[] excess = [0, 0.04, 0.01];
        var inputs = spec.CreatePlan().Rows.SelectMany(r => excess.Select(e => new MeasurementInput(r.InputLength, r.OutputLength,
            source.Predict(r.InputLength, r.OutputLength).E2eMs * (1 + e + (r.InputLength % 3 * 0.01))))).ToArray();
        await _acme.ImportMeasurementsAsync(device, id, new MeasurementBatch(inputs, "repeats1"));

        // The service composes its model from bucket snapshots; its calibration is the one a local fit of the same data gives.
        var served = Lens.Core.ModelJson.Deserialize(await _acme.GetModelJsonAsync(device, id), "served");
        var local = Lens.Core.BucketFitter.Fit(served.Buckets,
            inputs.Select(m => new Lens.Core.MeasuredRequest(m.InputLength, m.OutputLength, m.E2eMs)), served.Statistic);
        Assert.Equal(inputs.Length, served.Calibration.E2e.Repeats);
        Assert.Equal(local.Calibration, served.Calibration);
        var p = await _acme.PredictAsync(device, id, 100, 10);
        Assert.Equal(0.95, p.IntervalLevel);
        var expected = local.Predict(100, 10);
        Assert.Equal(expected.E2eLowMs, p.E2eLowMs, 9);
        Assert.Equal(expected.E2eHighMs, p.E2eHighMs, 9);
        Assert.Equal(expected.TtftHighMs, p.TtftHighMs!.Value, 9);
        Assert.True(p.E2eLowMs <= p.E2eMs && p.E2eMs < p.E2eHighMs);
    }

    [Fact]
    public async Task Bad_bodies_are_400_and_store_nothing()
    {
        var device = NewDevice();

        using var notJson = await PostRawAsync($"v1/devices/{device}/deployments", "{ this is not json", "application/json");
        await AssertProblemAsync(notJson, HttpStatusCode.BadRequest, "The request is invalid");
        using var wrongType = await PostRawAsync($"v1/devices/{device}/deployments", "name=llama", "text/plain");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, wrongType.StatusCode);
        Assert.Equal("application/problem+json", wrongType.Content.Headers.ContentType?.MediaType);

        var badBuckets = TestModels.Spec("llama") with { PrefillBuckets = [256, 128] };
        var ex = await Assert.ThrowsAsync<LensApiException>(() => _acme.CreateDeploymentAsync(device, badBuckets));
        Assert.Equal(400, ex.Status);
        Assert.Contains("buckets", ex.Errors.Keys);
        var badName = await Assert.ThrowsAsync<LensApiException>(() => _acme.CreateDeploymentAsync(device, TestModels.Spec("llama/v2")));
        Assert.Equal(400, badName.Status);
        Assert.Contains("name", badName.Errors.Keys);
        var badBackend = await Assert.ThrowsAsync<LensApiException>(() => _acme.CreateDeploymentAsync(device,
            TestModels.Spec("llama") with { Backend = new BackendSpec("carrier-pigeon") }));
        Assert.Contains("backend.kind", badBackend.Errors.Keys);
        var badModel = await Assert.ThrowsAsync<LensApiException>(() => _acme.CreateDeploymentAsync(device,
            TestModels.Spec("llama") with { Backend = new BackendSpec(BackendSpec.Replay, ModelJson: "{\"format\": \"other\"}") }));
        Assert.Contains("backend.modelJson", badModel.Errors.Keys);
        var badDevice = await Assert.ThrowsAsync<LensApiException>(() => _acme.ListDeploymentsAsync("npu 1"));
        Assert.Equal(400, badDevice.Status);

        Assert.Empty(await _acme.ListDeploymentsAsync(device));
    }

    [Fact]
    public async Task Unknown_deployments_are_404()
    {
        var device = NewDevice();
        foreach (var call in new Func<Task>[]
                 {
                     () => _acme.GetDeploymentAsync(device, "nope-0123456789"),
                     () => _acme.StartProfileAsync(device, "nope-0123456789"),
                     () => _acme.GetProfileProgressAsync(device, "nope-0123456789"),
                     () => _acme.PredictAsync(device, "nope-0123456789", 10, 10),
                     () => _acme.GetModelJsonAsync(device, "nope-0123456789"),
                     () => _acme.ImportMeasurementsAsync(device, "nope-0123456789", new MeasurementBatch([new MeasurementInput(1, 1, 1)])),
                     () => _acme.GetBucketMeasurementsAsync(device, "nope-0123456789", "decode-128"),
                 })
        {
            var ex = await Assert.ThrowsAsync<LensApiException>(call);
            Assert.Equal(404, ex.Status);
            Assert.Equal("Not found", ex.Title);
            Assert.False(string.IsNullOrEmpty(ex.Detail));
        }
    }

    [Fact]
    public async Task Out_of_range_lengths_are_400_and_store_nothing()
    {
        var device = NewDevice();
        var id = await ProfiledAsync(device);
        var versions = await VersionsAsync(device, id);

        var tooLong = await Assert.ThrowsAsync<LensApiException>(() => _acme.PredictAsync(device, id, 1000, 100));
        Assert.Equal(400, tooLong.Status);
        Assert.Contains("longest", tooLong.Detail, StringComparison.Ordinal);
        var zero = await Assert.ThrowsAsync<LensApiException>(() => _acme.PredictAsync(device, id, 0, 1));
        Assert.Equal(400, zero.Status);
        var batch = await Assert.ThrowsAsync<LensApiException>(() => _acme.PredictManyAsync(device, id, [10, 600], [10, 10]));
        Assert.Equal(400, batch.Status);
        Assert.Contains("#1", batch.Detail, StringComparison.Ordinal);
        var json = new LensHttpClient(fixture.Http, HttpHostFixture.AcmeKey) { BinaryBatches = false };
        var mismatched = await Assert.ThrowsAsync<LensApiException>(() => json.PredictManyAsync(device, id, [10, 20], [10]));
        Assert.Equal(400, mismatched.Status);
        await Assert.ThrowsAsync<ArgumentException>(() => _acme.PredictManyAsync(device, id, [10, 20], [10])); // caught before the wire

        // One bad measurement in a batch: nothing of the batch is stored.
        var import = await Assert.ThrowsAsync<LensApiException>(() => _acme.ImportMeasurementsAsync(device, id,
            new MeasurementBatch([new MeasurementInput(10, 10, 50), new MeasurementInput(600, 10, 50), new MeasurementInput(10, 10, -1)])));
        Assert.Equal(400, import.Status);
        Assert.Contains("measurements[1]", import.Errors.Keys);
        Assert.Contains("measurements[2]", import.Errors.Keys);
        var telemetry = await Assert.ThrowsAsync<LensApiException>(() => _acme.ReportTelemetryAsync(device, id,
            new MeasurementBatch([new MeasurementInput(10, 2000, 50)])));
        Assert.Equal(400, telemetry.Status);
        var badBucket = await Assert.ThrowsAsync<LensApiException>(() => _acme.StartProfileAsync(device, id, "decode-999"));
        Assert.Equal(400, badBucket.Status);
        var ownRows = await Assert.ThrowsAsync<LensApiException>(() => _acme.StartProfileAsync(device, id, "prefill-128"));
        Assert.Equal(400, ownRows.Status);

        Assert.Equal(versions, await VersionsAsync(device, id));
        Assert.Equal(0, (await _acme.GetBucketsAsync(device, id)).Sum(b => b.TelemetryCount));
    }

    [Fact]
    public async Task Another_tenant_gets_404_and_changes_nothing()
    {
        var device = NewDevice();
        var id = await ProfiledAsync(device);
        var versions = await VersionsAsync(device, id);
        var model = await _acme.GetModelJsonAsync(device, id);
        var globex = fixture.Globex;

        foreach (var call in new Func<Task>[]
                 {
                     () => globex.GetDeploymentAsync(device, id),
                     () => globex.GetModelJsonAsync(device, id),
                     () => globex.PredictAsync(device, id, 10, 10),
                     () => globex.StartProfileAsync(device, id),
                     () => globex.ImportMeasurementsAsync(device, id, new MeasurementBatch([new MeasurementInput(10, 10, 1)])),
                     () => globex.ReportTelemetryAsync(device, id, new MeasurementBatch([new MeasurementInput(10, 10, 1)])),
                     () => globex.GetBucketMeasurementsAsync(device, id, "decode-128"),
                 })
        {
            var ex = await Assert.ThrowsAsync<LensApiException>(call);
            Assert.Equal(404, ex.Status);
        }

        Assert.Empty(await globex.ListDeploymentsAsync(device));
        Assert.Equal(versions, await VersionsAsync(device, id));
        Assert.Equal(model, await _acme.GetModelJsonAsync(device, id));
        Assert.Equal(ProfileState.Completed, (await _acme.GetProfileProgressAsync(device, id)).State);
    }

    [Fact]
    public async Task A_changed_spec_under_a_taken_name_is_409()
    {
        var device = NewDevice();
        var first = await _acme.CreateDeploymentAsync(device, TestModels.Spec("llama"));
        var ex = await Assert.ThrowsAsync<LensApiException>(() => _acme.CreateDeploymentAsync(device, TestModels.Spec("llama") with { BatchSize = 8 }));
        Assert.Equal(409, ex.Status);
        var deployments = await _acme.ListDeploymentsAsync(device);
        Assert.Equal(first.Id, Assert.Single(deployments).Id);
        Assert.Equal(1, deployments[0].Spec.BatchSize);
    }

    [Fact]
    public async Task Binary_and_json_batches_agree_and_a_malformed_binary_body_is_400()
    {
        var device = NewDevice();
        var id = await ProfiledAsync(device);
        var json = new LensHttpClient(fixture.Http, HttpHostFixture.AcmeKey) { BinaryBatches = false };
        var rng = new Random(3);
        var inputs = Enumerable.Range(0, 500).Select(_ => rng.Next(1, 513)).ToArray();
        var outputs = inputs.Select(i => rng.Next(1, 1024 - i + 1)).ToArray();
        outputs[7] = 1; // TPOT is null (NaN in binary) where O = 1
        var viaBinary = await _acme.PredictManyAsync(device, id, inputs, outputs);
        var viaJson = await json.PredictManyAsync(device, id, inputs, outputs);
        Assert.Equal(viaJson.ModelVersion, viaBinary.ModelVersion);
        Assert.Equal(viaJson.E2eMs, viaBinary.E2eMs); // JSON writes doubles round-trippably: equal to the bit
        Assert.Equal(viaJson.TtftMs, viaBinary.TtftMs);
        Assert.Equal(viaJson.TpotMs, viaBinary.TpotMs);
        Assert.Null(viaBinary.TpotMs[7]);
        Assert.Equal(viaJson.E2eLowMs, viaBinary.E2eLowMs);
        Assert.Equal(viaJson.E2eHighMs, viaBinary.E2eHighMs);
        Assert.Equal(TestModels.Source().Predict(inputs[0], outputs[0]).E2eMs, viaBinary.E2eMs[0], 9);

        var path = $"/v1/devices/{device}/deployments/{id}/predict/batch";
        var valid = BatchCodec.EncodeRequest(new PredictManyRequest([100, 1], [10, 1]));
        var badMagic = valid.ToArray();
        badMagic[0] = (byte)'X';
        var problem = await PostBytesAsync(path, badMagic);
        await AssertProblemAsync(problem, HttpStatusCode.BadRequest, "The request is invalid");
        Assert.Contains("LNSQ", await problem.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var truncated = await PostBytesAsync(path, valid[..^4]);
        await AssertProblemAsync(truncated, HttpStatusCode.BadRequest, "The request is invalid");
        Assert.Contains("a request of 2 predictions has 28", await truncated.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var outOfRange = await PostBytesAsync(path, BatchCodec.EncodeRequest(new PredictManyRequest([10, 600], [10, 10])));
        await AssertProblemAsync(outOfRange, HttpStatusCode.BadRequest, "Request outside the deployment's buckets");

        // A JSON request may ask for a binary answer, and a binary request gets JSON unless it asks.
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent("{\"inputLengths\":[100,1],\"outputLengths\":[10,1]}", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Api-Key", HttpHostFixture.AcmeKey);
        request.Headers.Accept.ParseAdd(BatchCodec.MediaType);
        using var binary = await fixture.Http.SendAsync(request);
        Assert.Equal(BatchCodec.MediaType, binary.Content.Headers.ContentType?.MediaType);
        Assert.Equal(viaBinary.ModelVersion, BatchCodec.ReadResult(await binary.Content.ReadAsByteArrayAsync()).ModelVersion);
        using var asJson = await PostBytesAsync(path, valid);
        Assert.Equal("application/json", asJson.Content.Headers.ContentType?.MediaType);
        Assert.Equal(2, (await asJson.Content.ReadFromJsonAsync<PredictManyResult>(LensJson.Options))!.E2eMs.Length);
    }

    private async Task<HttpResponseMessage> PostBytesAsync(string path, byte[] body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(BatchCodec.MediaType);
        request.Headers.Add("X-Api-Key", HttpHostFixture.AcmeKey);
        return await fixture.Http.SendAsync(request);
    }

    private async Task<string> ProfiledAsync(string device)
    {
        var id = (await _acme.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device))).Id;
        await _acme.StartProfileAsync(device, id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Assert.Equal(ProfileState.Completed, (await _acme.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token)).State);
        return id;
    }

    private async Task<string> VersionsAsync(string device, string id)
    {
        var buckets = await _acme.GetBucketsAsync(device, id);
        var info = await _acme.GetDeploymentAsync(device, id);
        return JsonSerializer.Serialize(buckets, LensJson.Options) + info.ModelVersion;
    }

    private async Task<HttpResponseMessage> PostRawAsync(string path, string body, string contentType)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, contentType) };
        request.Headers.Add("X-Api-Key", HttpHostFixture.AcmeKey);
        return await fixture.Http.SendAsync(request);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string title)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.Equal(title, problem.GetProperty("title").GetString());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("detail").GetString()));
    }

    private static string NewDevice() => "npu-" + Guid.NewGuid().ToString("N")[..8];
}
