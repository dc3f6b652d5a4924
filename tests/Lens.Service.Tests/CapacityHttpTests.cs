using Lens.Abstractions;
using Lens.Client;
using Lens.Core;

namespace Lens.Service.Tests;

/// <summary>Capacity planning over HTTP: the tenant's deployments as candidates, the core's answer, bounds, and tenant isolation.</summary>
public sealed class CapacityHttpTests(HttpHostFixture fixture) : IClassFixture<HttpHostFixture>
{
    private readonly LensHttpClient _acme = fixture.Acme;
    private readonly LensHttpClient _globex = fixture.Globex;

    /// <summary>A noiseless single-batch device: A = 20, 35, 60 and S[d] = 4 + d / 256, all times <paramref name="slowdown"/>.</summary>
    private static DeploymentModel Truth(double slowdown)
    {
        var buckets = new BucketSet(TestModels.Prefill, TestModels.Decode, DecodeConvention.AfterAppend);
        double[] a = [20, 35, 60];
        return new DeploymentModel(buckets,
            [.. TestModels.Prefill.Select((p, i) => new PrefillValues(p, a[i] * slowdown, 0, a[i] * slowdown, 0, double.NaN))],
            [.. TestModels.Decode.Select(d => new DecodeValues(d, (4 + (d / 256.0)) * slowdown, 0))], RepeatStatistic.Min, 0);
    }

    private async Task<(string Id, DeploymentModel Served)> Deploy(string device, string name, double slowdown)
    {
        var created = await _acme.CreateDeploymentAsync(device, TestModels.Spec(name));
        var truth = Truth(slowdown);
        var rows = new List<MeasurementInput>();
        foreach (var row in ProfilingPlanner.Create(truth.Buckets).Rows)
        {
            var p = truth.Predict(row.InputLength, row.OutputLength);
            rows.Add(new MeasurementInput(row.InputLength, row.OutputLength, p.E2eMs, p.TtftMs, row.Bucket.ToString()));
        }

        await _acme.ImportMeasurementsAsync(device, created.Id, new MeasurementBatch([.. rows], "capacity-1"));
        return (created.Id, ModelJson.Deserialize(await _acme.GetModelJsonAsync(device, created.Id), "served"));
    }

    [Fact]
    public async Task A_tenant_plans_capacity_over_its_deployments_and_another_tenant_cannot_name_them()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var (fast, fastModel) = await Deploy(device, "cap-fast", 1);
        var (slow, slowModel) = await Deploy(device, "cap-slow", 2.5);
        var workload = new WorkloadSpec(30, 600, InputDist: "uniform:1-500", OutputDist: "uniform:2-60", Seed: 3);
        var request = new CapacityRequest(
            [new CapacityCandidateSpec(device, fast, Chips: 2, DeviceKind: "npu-x"), new CapacityCandidateSpec(device, slow)],
            SloTtftMs: 300, SloTpotMs: 15, Attainment: 0.9, Workload: workload, Routing: "least-outstanding", MaxReplicas: 32,
            PricePerChipHour: 1.5);
        var report = await _acme.CapacityAsync(request);

        // The same plan in-process on the served models.
        var trace = new Workload { RequestsPerSecond = 30, InputDist = "uniform:1-500", OutputDist = "uniform:2-60", Count = 600, Seed = 3 }
            .Generate(fastModel.Buckets).Requests;
        var local = CapacityPlanner.Plan(
            [new CapacityCandidate("fast", fastModel.WithLayout(new DeploymentLayout(2, "npu-x", 1.5))),
             new CapacityCandidate("slow", slowModel.WithLayout(new DeploymentLayout(1, null, 1.5)))],
            trace, new CapacitySlo(300, 15, 0.9), new CapacityOptions(FleetRouting.LeastOutstanding, 32));
        Assert.Equal(local.Candidates.Select(c => c.Replicas), report.Candidates.Select(c => c.Replicas));
        Assert.Equal(local.Candidates.Select(c => c.CostPerHour), report.Candidates.Select(c => c.CostPerHour));
        Assert.Equal(local.Candidates.Select(c => c.Cheapest), report.Candidates.Select(c => c.Cheapest));
        Assert.All(report.Candidates, c => Assert.True(c.Meets, c.Reason));
        Assert.True(report.Candidates[1].Replicas > report.Candidates[0].Replicas);
        Assert.Equal(2 * report.Candidates[0].Replicas, report.Candidates[0].Chips);
        Assert.Equal(fast, report.Candidates[0].Deployment);
        Assert.NotNull(report.Candidates[0].HeadroomRequestsPerSecond);
        Assert.Equal(600, report.Requests);

        // Without any price (neither the candidate, the request nor the tenant's settings), cost is null.
        var unpriced = await _acme.CapacityAsync(request with { PricePerChipHour = null, Headroom = false });
        Assert.All(unpriced.Candidates, c => Assert.Null(c.CostPerHour));

        // Globex names acme's device and deployment: not found, nothing about acme's deployment leaks.
        var foreign = await Assert.ThrowsAsync<LensApiException>(() => _globex.CapacityAsync(request));
        Assert.Equal(404, foreign.Status);
    }

    [Theory]
    [InlineData("candidates")]
    [InlineData("maxReplicas")]
    [InlineData("attainment")]
    [InlineData("routing")]
    [InlineData("candidates[0]")]
    [InlineData("workload.count")]
    public async Task Unbounded_or_invalid_requests_are_problems_naming_the_field(string field)
    {
        var one = new CapacityCandidateSpec("npu-0", "missing");
        var request = new CapacityRequest([one], 100, 10, Workload: new WorkloadSpec(5, 100));
        request = field switch
        {
            "candidates" => request with { Candidates = [.. Enumerable.Repeat(one, 17)] },
            "maxReplicas" => request with { MaxReplicas = 1000 },
            "attainment" => request with { Attainment = 1.5 },
            "routing" => request with { Routing = "random" },
            "candidates[0]" => request with { Candidates = [one with { Chips = 0 }] },
            _ => request,
        };
        if (field == "workload.count")
        {
            // Validation before the models: needs a real deployment to get that far.
            var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
            var (id, _) = await Deploy(device, "cap-bounds", 1);
            request = new CapacityRequest([new CapacityCandidateSpec(device, id)], 100, 10, Workload: new WorkloadSpec(5, 100_001));
        }

        var error = await Assert.ThrowsAsync<LensApiException>(() => _acme.CapacityAsync(request));
        Assert.Equal(400, error.Status);
        Assert.Contains(field, error.Errors!.Keys);
    }
}
