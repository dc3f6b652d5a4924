using System.Text.Json;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Grains;

namespace Lens.Service.Tests;

public sealed class WhatIfHttpTests(HttpHostFixture fixture) : IClassFixture<HttpHostFixture>
{
    private readonly LensHttpClient _acme = fixture.Acme;

    /// <summary>A deployment of <see cref="TestModels.Source"/>, fitted from imported measurements of its plan.</summary>
    private async Task<(string Device, string Id)> FittedAsync()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var spec = TestModels.Spec("llama");
        var id = (await _acme.CreateDeploymentAsync(device, spec)).Id;
        var source = TestModels.Source();
        await _acme.ImportMeasurementsAsync(device, id, new MeasurementBatch([.. spec.CreatePlan().Rows.Select(r =>
            new MeasurementInput(r.InputLength, r.OutputLength, source.Predict(r.InputLength, r.OutputLength).E2eMs))], "import1"));
        return (device, id);
    }

    [Fact]
    public async Task Whatif_and_advise_answer_over_http_per_tenant()
    {
        var (device, id) = await FittedAsync();
        var json = await _acme.WhatIfAsync(device, id, new WhatIfRequest([128, 384, 512], [256, 768, 1024]));
        var model = ModelJson.Deserialize(json, "whatif");
        Assert.Equal(new BucketSet([128, 384, 512], [256, 768, 1024]), model.Buckets);
        Assert.Equal(20, model.PrefillBuckets[0].AMs, 9); // profiled: kept
        Assert.Equal(id, ModelJson.ReadPredicted(json)!.Source);

        var advice = await _acme.AdviseAsync(device, id, new AdviseRequest([0, 100, 200, 300], [50, 60, 400, 70], [20, 30, 40, 50],
            SloTtftMs: 500, SloTpotMs: 50, MaxBuckets: 2));
        using var doc = JsonDocument.Parse(advice);
        var recommended = doc.RootElement.GetProperty("advice").GetProperty("recommended");
        Assert.Equal(2, recommended.GetProperty("prefill").GetArrayLength());
        Assert.Equal(80, recommended.GetProperty("prefill")[0].GetInt32()); // prompts 50..70 rounded up to 16

        var generated = await _acme.AdviseAsync(device, id, new AdviseRequest(Workload: new WorkloadSpec(5, 200, InputDist: "uniform:1-300",
            OutputDist: "uniform:1-200"), MaxBuckets: 3));
        Assert.Contains("\"frontier\"", generated, StringComparison.Ordinal);

        var other = await Assert.ThrowsAsync<LensApiException>(() => fixture.Globex.WhatIfAsync(device, id, new WhatIfRequest([128], [1024])));
        Assert.Equal(404, other.Status);
    }

    [Fact]
    public async Task A_whatif_model_becomes_a_deployment_the_service_predicts_with()
    {
        // The service takes a what-if model like any model: as a replay backend, profiled without waiting, then served.
        var (device, id) = await FittedAsync();
        int[] prefill = [128, 384, 512], decode = [256, 768, 1024];
        var json = await _acme.WhatIfAsync(device, id, new WhatIfRequest(prefill, decode));
        var whatIf = ModelJson.Deserialize(json, "whatif");
        var spec = new DeploymentSpec("llama-whatif", "llama-3.1-8b", prefill, decode, new BackendSpec(BackendSpec.Replay, ModelJson: json),
            SdkVersion: "2.19", Dtype: "bf16");
        var created = await _acme.CreateDeploymentAsync(device, spec);
        await _acme.StartProfileAsync(device, created.Id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        Assert.Equal(ProfileState.Completed, (await _acme.WaitForProfileAsync(device, created.Id, TimeSpan.FromMilliseconds(50), wait.Token)).State);

        foreach (var (i, o) in new[] { (300, 200), (100, 900), (500, 10) })
        {
            var served = await _acme.PredictAsync(device, created.Id, i, o);
            Assert.Equal(whatIf.Predict(i, o).E2eMs, served.E2eMs, 6);
        }
    }

    [Fact]
    public async Task Bad_whatif_and_advise_bodies_are_400_problems_naming_the_field()
    {
        var (device, id) = await FittedAsync();
        var unsorted = await Assert.ThrowsAsync<LensApiException>(() => _acme.WhatIfAsync(device, id, new WhatIfRequest([256, 128], [1024])));
        Assert.Equal(400, unsorted.Status);
        Assert.Contains("not ascending", unsorted.Detail, StringComparison.Ordinal);

        var far = await Assert.ThrowsAsync<LensApiException>(() => _acme.WhatIfAsync(device, id, new WhatIfRequest([128], [1024, 2048])));
        Assert.Equal(400, far.Status);
        Assert.Contains("decodeBuckets", far.Errors.Keys);
        Assert.Contains("allowed 1..1536", far.Detail, StringComparison.Ordinal);

        var missing = await Assert.ThrowsAsync<LensApiException>(() => _acme.WhatIfAsync(device, id, new WhatIfRequest(null, [1024])));
        Assert.Equal(400, missing.Status);

        var empty = await Assert.ThrowsAsync<LensApiException>(() => _acme.AdviseAsync(device, id, new AdviseRequest([], [], [])));
        Assert.Equal(400, empty.Status);

        var beyond = await Assert.ThrowsAsync<LensApiException>(() => _acme.AdviseAsync(device, id, new AdviseRequest([0], [900], [10])));
        Assert.Equal(400, beyond.Status);
        Assert.Contains("request #1", beyond.Detail, StringComparison.Ordinal);

        var budget = await Assert.ThrowsAsync<LensApiException>(() => _acme.AdviseAsync(device, id, new AdviseRequest([0], [10], [10], MaxBuckets: 99)));
        Assert.Equal(400, budget.Status);
        Assert.Contains("1..32", budget.Detail, StringComparison.Ordinal);

        var tooMany = await Assert.ThrowsAsync<LensApiException>(() => _acme.AdviseAsync(device, id,
            new AdviseRequest(Workload: new WorkloadSpec(5, 20_001))));
        Assert.Equal(400, tooMany.Status);
        Assert.Contains("1..20000", tooMany.Detail, StringComparison.Ordinal);
    }
}

[Collection(ClusterCollection.Name)]
public sealed class WhatIfClusterTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Whatif_and_advise_through_the_orleans_client()
    {
        var lens = new LensClusterClient(fixture.Client, "acme");
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var spec = TestModels.Spec("llama");
        var id = (await lens.CreateDeploymentAsync(device, spec)).Deployment.Id;
        var source = TestModels.Source();
        await lens.ImportMeasurementsAsync(device, id, new MeasurementBatch([.. spec.CreatePlan().Rows.Select(r =>
            new MeasurementInput(r.InputLength, r.OutputLength, source.Predict(r.InputLength, r.OutputLength).E2eMs))], "import1"));

        var model = ModelJson.Deserialize(await lens.WhatIfAsync(device, id, new WhatIfRequest([128, 512], [512, 768, 1024])), "whatif");
        Assert.Equal(source.Predict(100, 300).TtftMs, model.Predict(100, 300).TtftMs, 9); // prefill-128 was profiled
        Assert.NotNull(ModelJson.ReadPredicted(await lens.WhatIfAsync(device, id, new WhatIfRequest([128], [1024]))));

        using var advice = JsonDocument.Parse(await lens.AdviseAsync(device, id, new AdviseRequest([0, 10], [100, 200], [10, 20], MaxBuckets: 1)));
        Assert.Equal(208, advice.RootElement.GetProperty("advice").GetProperty("recommended").GetProperty("prefill")[0].GetInt32());

        var ex = await Assert.ThrowsAsync<LensException>(() => lens.WhatIfAsync(device, id, new WhatIfRequest([128], [4096])));
        Assert.Equal(LensErrorKind.Validation, ex.Kind);
        var other = await Assert.ThrowsAsync<LensException>(() => new LensClusterClient(fixture.Client, "globex").AdviseAsync(device, id,
            new AdviseRequest([0], [10], [10])));
        Assert.Equal(LensErrorKind.NotFound, other.Kind);
    }
}
