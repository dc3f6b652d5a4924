using Lens.Abstractions;
using Lens.Client;
using Lens.Core;

namespace Lens.Service.Tests;

/// <summary>Batch buckets through the service: identity, grouped imports, the fitted S[B, d], simulation and static batches over HTTP.</summary>
public sealed class BatchedServingHttpTests(HttpHostFixture fixture) : IClassFixture<HttpHostFixture>
{
    private static readonly int[] Batch = [1, 2, 4];
    private readonly LensHttpClient _acme = fixture.Acme;

    /// <summary>A noiseless batched device: A as <see cref="TestModels"/>, S[b, d] = 4 + b + d / 256.</summary>
    private static DeploymentModel Truth()
    {
        var buckets = new BucketSet(TestModels.Prefill, TestModels.Decode, DecodeConvention.AfterAppend, Batch);
        double[] a = [20, 35, 60];
        return new DeploymentModel(buckets, [.. TestModels.Prefill.Select((p, i) => new PrefillValues(p, a[i], 0, a[i], 0, double.NaN))],
            [.. Batch.SelectMany(b => TestModels.Decode.Select(d => new DecodeValues(d, 4 + b + (d / 256.0), 0, b)))], RepeatStatistic.Min, 0);
    }

    [Fact]
    public async Task A_batched_deployment_is_imported_fitted_and_simulated_over_http()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var single = TestModels.Spec("batched");
        var spec = single with { BatchBuckets = Batch };
        Assert.NotEqual(single.DeploymentId, spec.DeploymentId);                              // batch buckets are identity
        Assert.Equal(single.DeploymentId, (single with { BatchBuckets = [1] }).DeploymentId); // and [1] is today's id
        var created = await _acme.CreateDeploymentAsync(device, spec);
        Assert.Contains("decode-1024-b4", created.Buckets);

        // Each plan point is a group of `batch` identical requests released at once, timed from its release.
        var truth = Truth();
        var rows = new List<MeasurementInput>();
        long group = 0;
        foreach (var row in ProfilingPlanner.Create(truth.Buckets).Rows)
        {
            var run = ServingSimulation.StaticBatch(truth, [.. Enumerable.Repeat(new RequestPair(row.InputLength, row.OutputLength), row.Batch)]);
            rows.AddRange(run.Requests.Select(r => new MeasurementInput(row.InputLength, row.OutputLength, r.E2eMs, r.TtftMs, row.Bucket.ToString(),
                row.Batch, group)));
            group++;
        }

        await _acme.ImportMeasurementsAsync(device, created.Id, new MeasurementBatch([.. rows], "groups-1"));
        var served = ModelJson.Deserialize(await _acme.GetModelJsonAsync(device, created.Id), "served");
        Assert.Equal(truth.Buckets, served.Buckets);
        for (var b = 0; b < Batch.Length; b++)
        {
            for (var d = 0; d < TestModels.Decode.Length; d++)
            {
                Assert.Equal(truth.StepMs(b, d), served.StepMs(b, d), 6);
            }
        }

        double[] arrivals = [0, 0, 5, 400];
        int[] inputs = [100, 200, 300, 50], outputs = [50, 20, 1, 300];
        var report = await _acme.SimulateAsync(device, created.Id, new SimulateRequest(arrivals, inputs, outputs, IncludeRequests: true));
        var local = ServingSimulation.Simulate(served, [.. arrivals.Select((t, k) => new TraceRequest(t, inputs[k], outputs[k]))]);
        Assert.Equal(4, report.MaxNumSeqs);
        Assert.Equal(local.Requests.Select(r => r.E2eMs), report.E2eMs!, new ToleranceComparer(1e-9));
        Assert.Null(report.TpotMs![2]);                                                         // O = 1

        var generated = await _acme.SimulateAsync(device, created.Id,
            new SimulateRequest(Workload: new WorkloadSpec(20, 500, InputDist: "uniform:1-512", OutputDist: "fixed:64"), MaxNumSeqs: 2,
                SloTtftMs: 500, SloTpotMs: 20));
        Assert.Equal(500, generated.Requests);
        Assert.Equal(2, generated.MaxNumSeqs);
        Assert.InRange(generated.SloAttainment!.Value, 0, 1);

        var group4 = await _acme.PredictStaticBatchAsync(device, created.Id, new StaticBatchRequest([100, 100, 100, 100], [10, 10, 10, 10]));
        Assert.Equal([20.0, 40, 60, 80], group4.TtftMs!, new ToleranceComparer(1e-6));          // prefills in turn, A[128] = 20
        Assert.All(group4.E2eMs!, e => Assert.Equal(80 + (9 * (4 + 4 + 0.5)), e, 6));          // then 9 steps at S[4, 128]

        var tooMany = await Assert.ThrowsAsync<LensApiException>(() =>
            _acme.SimulateAsync(device, created.Id, new SimulateRequest([0], [10], [10], MaxNumSeqs: 8)));
        Assert.Equal(400, tooMany.Status);
        Assert.Contains("maxNumSeqs", tooMany.Errors!.Keys);
        var outOfRange = await Assert.ThrowsAsync<LensApiException>(() =>
            _acme.SimulateAsync(device, created.Id, new SimulateRequest([0, 0], [10, 900], [10, 10])));
        Assert.Equal(400, outOfRange.Status);
        Assert.Contains("trace row 2", outOfRange.Detail);
        var badGroup = await Assert.ThrowsAsync<LensApiException>(() => _acme.ImportMeasurementsAsync(device, created.Id,
            new MeasurementBatch([new MeasurementInput(10, 10, 50, Batch: 3)])));
        Assert.Equal(400, badGroup.Status);
        var partial = await Assert.ThrowsAsync<LensApiException>(() => _acme.ImportMeasurementsAsync(device, created.Id,
            new MeasurementBatch([new MeasurementInput(10, 10, 50, Batch: 4, Group: 7), new MeasurementInput(10, 10, 51, Batch: 4, Group: 7)])));
        Assert.Equal(400, partial.Status);
        Assert.Contains("group 7 has 2 rows but batch 4", partial.Detail);
    }

    [Fact]
    public async Task The_service_profiles_a_batched_deployment_in_groups_and_recovers_every_step_cost()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var truth = Truth();
        var spec = TestModels.Spec("grouped", repeats: 2) with
        {
            BatchBuckets = Batch,
            Backend = new BackendSpec(BackendSpec.Replay, ModelJson: ModelJson.Serialize(truth)),
        };
        var created = await _acme.CreateDeploymentAsync(device, spec);
        await _acme.StartProfileAsync(device, created.Id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var done = await _acme.WaitForProfileAsync(device, created.Id, TimeSpan.FromMilliseconds(50), wait.Token);
        Assert.Equal(ProfileState.Completed, done.State);

        var served = ModelJson.Deserialize(await _acme.GetModelJsonAsync(device, created.Id), "served");
        for (var b = 0; b < Batch.Length; b++)
        {
            for (var d = 0; d < TestModels.Decode.Length; d++)
            {
                Assert.Equal(truth.StepMs(b, d), served.StepMs(b, d), 6);
            }
        }

        // A group's rows are stored one per request, with their batch and one group id per (row, repeat).
        var rows = await _acme.GetBucketMeasurementsAsync(device, created.Id, "decode-256-b4");
        Assert.Equal(2 * 2 * 4, rows.Length);
        Assert.All(rows, r => Assert.Equal(4, r.Batch));
        Assert.Equal(4, rows.GroupBy(r => r.Group).Count());
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance * Math.Max(1, Math.Abs(y));

        public int GetHashCode(double obj) => 0;
    }
}
