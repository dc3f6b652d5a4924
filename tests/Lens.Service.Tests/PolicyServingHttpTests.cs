using Lens.Abstractions;
using Lens.Client;
using Lens.Core;

namespace Lens.Service.Tests;

/// <summary>Known chunked and paged devices, their service specs, and measurements of a plan taken on them.</summary>
internal static class PolicyDevices
{
    public static readonly PolicySpec ChunkedWire = new(PolicySpec.Chunked, MaxNumBatchedTokens: 64, TokenBuckets: [4, 16, 64], MaxNumSeqs: 4);
    public static readonly SchedulingPolicy Chunked = SchedulingPolicy.ChunkedPrefill(64, [4, 16, 64], 4);
    public static readonly PolicySpec PagedWire = new(Execution: PolicySpec.Paged, BlockSize: 8, MaxModelLen: 512);
    public static readonly SchedulingPolicy Paged = SchedulingPolicy.PagedDecode(8, maxModelLen: 512);

    /// <summary>A chunked deployment: one prefill bucket, context buckets 64..256, token buckets 4, 16, 64.</summary>
    public static DeploymentSpec ChunkedSpec(string name, int repeats = 3) =>
        TestModels.Spec(name, repeats: repeats) with { PrefillBuckets = [64], DecodeBuckets = [64, 128, 256], Statistic = "mean", Policy = ChunkedWire };

    /// <summary>A paged deployment: its decode buckets are block buckets (KV blocks of 8 tokens), batch buckets 1, 2, 4.</summary>
    public static DeploymentSpec PagedSpec(string name, int repeats = 1) =>
        TestModels.Spec(name, repeats: repeats) with { PrefillBuckets = [64, 128, 256], DecodeBuckets = [16, 32, 64, 128], BatchBuckets = [1, 2, 4], Policy = PagedWire };

    /// <summary>A device whose every cell costs a known amount: rows (batch or token buckets) and columns both count.</summary>
    public static DeploymentModel Truth(BucketSet buckets, SchedulingPolicy policy)
    {
        var model = new DeploymentModel(buckets, [.. buckets.Prefill.Select(p => new PrefillValues(p, 15 + (p / 16.0), 0.1, double.NaN, 0, double.NaN))],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, 2 + (b * 0.05) + (d / 200.0), 0.01, b)))], RepeatStatistic.Min, 0.02);
        return model.WithPolicy(policy);
    }

    /// <summary>Every row of <paramref name="plan"/> released as a group on <paramref name="truth"/>, with a seeded noise of +-<paramref name="noise"/> per release.</summary>
    public static MeasurementInput[] Measure(DeploymentModel truth, PolicyPlan plan, double noise, int seed)
    {
        var random = new Random(seed);
        var rows = new List<MeasurementInput>();
        long group = 0;
        foreach (var row in plan.Rows)
        {
            var run = ServingSimulation.StaticBatch(truth, [.. Enumerable.Repeat(new RequestPair(row.InputLength, row.OutputLength), row.Batch)]);
            var f = 1 + (noise * ((2 * random.NextDouble()) - 1));
            rows.AddRange(run.Requests.Select(r => new MeasurementInput(row.InputLength, row.OutputLength, r.E2eMs * f, r.TtftMs * f,
                row.Bucket.ToString(), row.Batch, group)));
            group++;
        }

        return [.. rows];
    }

    /// <summary>Every cell the plan reaches is within three standard errors of the truth (the tolerance covers a noiseless fit);
    /// every cell it cannot reach is left unfitted.</summary>
    public static void AssertRecovered(DeploymentModel truth, PolicyPlan plan, DeploymentModel served)
    {
        Assert.Equal(truth.Policy, served.Policy);
        Assert.Equal(truth.Buckets, served.Buckets);
        var reached = plan.Cells.Where(c => c.Measurements > 0).ToArray();
        Assert.NotEmpty(reached);
        foreach (var c in reached)
        {
            var error = Math.Abs(served.CellMs(c.Cell) - truth.CellMs(c.Cell));
            Assert.True(error <= (3 * served.CellStandardError(c.Cell)) + (1e-6 * truth.CellMs(c.Cell)),
                $"{c.Name}: served {served.CellMs(c.Cell)}, truth {truth.CellMs(c.Cell)}, SE {served.CellStandardError(c.Cell)}");
        }

        foreach (var (cell, _) in plan.Unreachable)
        {
            var k = Enumerable.Range(0, served.Cells.Count).Single(c => served.CellName(c) == cell);
            Assert.True(double.IsNaN(served.CellMs(k)), $"{cell} was guessed");
        }
    }
}

/// <summary>Scheduling policies through the service: identity, validation, the joint fit of imported or profiled measurements, and the
/// served model's predictions and simulations under the policy, over HTTP.</summary>
public sealed class PolicyServingHttpTests(HttpHostFixture fixture) : IClassFixture<HttpHostFixture>
{
    private readonly LensHttpClient _acme = fixture.Acme;

    [Fact]
    public void A_policy_is_identity_only_when_it_is_not_prefill_first_padded()
    {
        var plain = TestModels.Spec("ids");
        Assert.Equal("ids-60d1cd2cd1", plain.DeploymentId); // the id every deployment without a policy had before policies existed
        Assert.Equal(plain.DeploymentId, (plain with { Policy = new PolicySpec() }).Normalized().DeploymentId);
        Assert.Equal(plain.DeploymentId, (plain with { Policy = new PolicySpec() }).DeploymentId);
        var chunked = plain with { Policy = PolicyDevices.ChunkedWire };
        Assert.NotEqual(plain.DeploymentId, chunked.DeploymentId);
        Assert.NotEqual(chunked.DeploymentId, (plain with { Policy = PolicyDevices.ChunkedWire with { MaxNumSeqs = 2 } }).DeploymentId);
        Assert.Equal(chunked.DeploymentId, (plain with { Policy = PolicyDevices.ChunkedWire with { TokenBuckets = [4, 16, 64] } }).DeploymentId);
        Assert.NotEqual(plain.DeploymentId, (plain with { Policy = PolicyDevices.PagedWire }).DeploymentId);

        // Batch buckets equal to the token buckets are derived, so they do not make another deployment.
        Assert.Equal(chunked.DeploymentId, (chunked with { BatchBuckets = [4, 16, 64] }).Normalized().DeploymentId);
        Assert.True(chunked.SameAs(chunked with { Policy = PolicyDevices.ChunkedWire with { TokenBuckets = [4, 16, 64] } }));
        Assert.False(chunked.SameAs(plain));
        Assert.True(plain.SameAs(plain with { Policy = new PolicySpec() }));
        Assert.True(chunked.Context.SameAs(chunked.Context with { Policy = PolicyDevices.ChunkedWire with { TokenBuckets = [4, 16, 64] } }));
        Assert.False(chunked.Context.SameAs(chunked.Context with { Policy = null }));
        Assert.Equal([4, 16, 64], chunked.Context.BatchBuckets!);
    }

    [Fact]
    public async Task A_chunked_deployment_is_imported_fitted_and_served_under_its_policy()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var created = await _acme.CreateDeploymentAsync(device, PolicyDevices.ChunkedSpec("chunked"));
        Assert.Equal(PolicySpec.Chunked, created.Spec.Policy!.Scheduler);                    // the policy round-trips through the HTTP JSON
        Assert.Equal([4, 16, 64], created.Spec.Policy.TokenBuckets!);
        Assert.Contains("decode-256-b64", created.Buckets);                                  // the token buckets are the step table's rows

        var buckets = new BucketSet([64], [64, 128, 256], DecodeConvention.AfterAppend, [4, 16, 64]);
        var truth = PolicyDevices.Truth(buckets, PolicyDevices.Chunked);
        var plan = PolicyPlanner.Create(buckets, PolicyDevices.Chunked, new PlanOptions(Repeats: 3));
        var rows = PolicyDevices.Measure(truth, plan, noise: 0.02, seed: 7);
        var intake = await _acme.ImportMeasurementsAsync(device, created.Id, new MeasurementBatch(rows, "chunked-1"));
        Assert.Equal(rows.Length, intake.Added);

        var json = await _acme.GetModelJsonAsync(device, created.Id);
        Assert.Contains("\"chunked\"", json, StringComparison.Ordinal);                       // format 3 carries the policy
        var served = ModelJson.Deserialize(json, "served");
        PolicyDevices.AssertRecovered(truth, plan, served);
        var stored = await _acme.GetBucketsAsync(device, created.Id);
        Assert.Equal(rows.Length, stored.Sum(b => b.MeasurementCount));                      // every row kept, each group in one bucket
        var kept = await _acme.GetBucketMeasurementsAsync(device, created.Id, "decode-64-b4");
        Assert.Contains(kept, r => r.Batch == 1);                                             // a release of one is kept in the row of its token bucket
        Assert.All(kept.Where(r => r.Group is not null).GroupBy(r => r.Group), g => Assert.Equal(g.First().Batch, g.Count()));

        // Predictions and simulations are the served model's, under the chunked scheduler.
        var one = await _acme.PredictAsync(device, created.Id, 100, 20);
        Assert.Equal(served.Predict(100, 20).E2eMs, one.E2eMs, 6);
        double[] arrivals = [0, 0, 3, 40, 41];
        int[] inputs = [100, 30, 200, 10, 60], outputs = [20, 40, 2, 100, 1];
        var report = await _acme.SimulateAsync(device, created.Id, new SimulateRequest(arrivals, inputs, outputs, IncludeRequests: true));
        var local = ServingSimulation.Simulate(served, [.. arrivals.Select((t, k) => new TraceRequest(t, inputs[k], outputs[k]))]);
        Assert.Equal(4, report.MaxNumSeqs);                                                  // max_num_seqs of the policy, not a batch bucket
        Assert.Equal([.. local.Requests.Select(r => Math.Round(r.E2eMs, 6))], report.E2eMs!.Select(e => Math.Round(e, 6)));

        // Observed latencies are judged against the policy's model (a request alone on an idle replica).
        var observed = await _acme.ReportTelemetryAsync(device, created.Id, new MeasurementBatch([new MeasurementInput(100, 20, one.E2eMs * 1.01)], "t1"));
        Assert.Equal(1, observed.Added);

        // A request the policy cannot serve, and a group above max_num_seqs, are refused naming the range.
        var tooLong = await Assert.ThrowsAsync<LensApiException>(() => _acme.PredictAsync(device, created.Id, 200, 100));
        Assert.Equal(400, tooLong.Status);
        Assert.Contains("I + O <= 256", tooLong.Detail, StringComparison.Ordinal);
        var tooMany = await Assert.ThrowsAsync<LensApiException>(() => _acme.ImportMeasurementsAsync(device, created.Id,
            new MeasurementBatch([.. Enumerable.Range(0, 5).Select(_ => new MeasurementInput(10, 10, 50, Batch: 5, Group: 1))])));
        Assert.Equal(400, tooMany.Status);
        Assert.Contains("1..4", tooMany.Detail, StringComparison.Ordinal);
        var whatIf = await Assert.ThrowsAsync<LensApiException>(() => _acme.WhatIfAsync(device, created.Id, new WhatIfRequest([64], [128, 256])));
        Assert.Equal(409, whatIf.Status);                                                    // the advisor plans prefill-first padded sets
    }

    [Fact]
    public async Task A_paged_deployment_is_profiled_by_the_service_with_its_policy_plan_and_serves_the_joint_fit()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var buckets = BucketSet.Paged([64, 128, 256], [16, 32, 64, 128], DecodeConvention.AfterAppend, [1, 2, 4]);
        var truth = PolicyDevices.Truth(buckets, PolicyDevices.Paged);
        var spec = PolicyDevices.PagedSpec("paged") with { Backend = new BackendSpec(BackendSpec.Replay, ModelJson: ModelJson.Serialize(truth)) };
        var created = await _acme.CreateDeploymentAsync(device, spec);
        Assert.Contains("decode-128-b4", created.Buckets);                                   // batch bucket x block bucket
        var progress = await _acme.StartProfileAsync(device, created.Id);
        var plan = PolicyPlanner.Create(buckets, PolicyDevices.Paged);
        Assert.Equal(plan.Rows.Count, progress.Total);                                       // the policy's plan, row by row
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var done = await _acme.WaitForProfileAsync(device, created.Id, TimeSpan.FromMilliseconds(50), wait.Token);
        Assert.True(done.State == ProfileState.Completed, done.LastError);

        var served = ModelJson.Deserialize(await _acme.GetModelJsonAsync(device, created.Id), "served");
        PolicyDevices.AssertRecovered(truth, plan, served);
        var stored = await _acme.GetBucketsAsync(device, created.Id);
        Assert.Equal(plan.Rows.Sum(r => r.Batch), stored.Sum(b => b.MeasurementCount));    // one record per request of every group

        double[] arrivals = [0, 1, 2, 3, 50];
        int[] inputs = [100, 200, 30, 60, 250], outputs = [100, 50, 200, 10, 200];
        var report = await _acme.SimulateAsync(device, created.Id, new SimulateRequest(arrivals, inputs, outputs, IncludeRequests: true));
        var local = ServingSimulation.Simulate(served, [.. arrivals.Select((t, k) => new TraceRequest(t, inputs[k], outputs[k]))]);
        Assert.Equal([.. local.Requests.Select(r => Math.Round(r.E2eMs, 6))], report.E2eMs!.Select(e => Math.Round(e, 6)));
        // Capacity plans on the policy's model, max_num_seqs bounded by it.
        var capacity = await _acme.CapacityAsync(new CapacityRequest([new CapacityCandidateSpec(device, created.Id, MaxNumSeqs: 4)], 5000, 500,
            Workload: new WorkloadSpec(5, 200, InputDist: "uniform:1-200", OutputDist: "uniform:2-100"), MaxReplicas: 8, Headroom: false));
        Assert.True(capacity.Candidates[0].Meets, capacity.Candidates[0].Reason);
        var seqs = await Assert.ThrowsAsync<LensApiException>(() => _acme.CapacityAsync(new CapacityRequest(
            [new CapacityCandidateSpec(device, created.Id, MaxNumSeqs: 5)], 5000, 500, Workload: new WorkloadSpec(5, 200))));
        Assert.Contains("candidates[0].maxNumSeqs", seqs.Errors!.Keys);
        var beyond = await Assert.ThrowsAsync<LensApiException>(() => _acme.PredictAsync(device, created.Id, 256, 300));
        Assert.Contains("max_model_len 512", beyond.Detail, StringComparison.Ordinal);
    }

    public static TheoryData<string, PolicySpec, string> BadPolicies => new()
    {
        { "budget", PolicyDevices.ChunkedWire with { MaxNumBatchedTokens = 0 }, "policy.maxNumBatchedTokens" },
        { "seqs", PolicyDevices.ChunkedWire with { MaxNumSeqs = 0 }, "policy.maxNumSeqs" },
        { "order", PolicyDevices.ChunkedWire with { TokenBuckets = [16, 4, 64] }, "policy.tokenBuckets" },
        { "small", PolicyDevices.ChunkedWire with { TokenBuckets = [4, 16] }, "policy.tokenBuckets" },
        { "long", PolicyDevices.ChunkedWire with { TokenBuckets = [.. Enumerable.Range(1, 10_000)] }, "policy.tokenBuckets" },
        { "scheduler", PolicyDevices.ChunkedWire with { Scheduler = "fcfs" }, "policy.scheduler" },
        { "execution", PolicyDevices.PagedWire with { Execution = "ragged" }, "policy.execution" },
        { "both", PolicyDevices.ChunkedWire with { Execution = PolicySpec.Paged, BlockSize = 8 }, "policy.execution" },
        { "block", PolicyDevices.PagedWire with { BlockSize = -1 }, "policy.blockSize" },
        { "len", PolicyDevices.PagedWire with { MaxModelLen = int.MaxValue }, "policy.maxModelLen" },
        { "stray", PolicyDevices.PagedWire with { MaxNumSeqs = 8 }, "policy.maxNumBatchedTokens" },
        { "seqs-budget", PolicyDevices.ChunkedWire with { MaxNumSeqs = 100 }, "policy.maxNumSeqs" },
        { "hostile", PolicyDevices.ChunkedWire with { MaxNumSeqs = 4096, MaxNumBatchedTokens = 1 << 20, TokenBuckets = [.. Enumerable.Range(1, 64).Select(k => k << 14)] }, "policy.maxNumSeqs" },
    };

    [Theory]
    [MemberData(nameof(BadPolicies))]
    public async Task A_bad_policy_is_a_400_naming_its_field(string name, PolicySpec policy, string field)
    {
        var spec = PolicyDevices.ChunkedSpec("bad-" + name) with { Policy = policy };
        if (name == "hostile")
        {
            spec = spec with { DecodeBuckets = [1 << 20] };
        }

        var ex = await Assert.ThrowsAsync<LensApiException>(() => _acme.CreateDeploymentAsync("npu-bad", spec));
        Assert.Equal(400, ex.Status);
        Assert.True(ex.Errors!.ContainsKey(field), $"{name}: {string.Join("; ", ex.Errors.Select(e => $"{e.Key}: {string.Join(' ', e.Value)}"))}");
    }

    [Fact]
    public async Task A_chunked_spec_whose_batch_buckets_disagree_with_its_token_buckets_is_refused()
    {
        var ex = await Assert.ThrowsAsync<LensApiException>(() =>
            _acme.CreateDeploymentAsync("npu-bad", PolicyDevices.ChunkedSpec("disagree") with { BatchBuckets = [1, 2, 4] }));
        Assert.Equal(400, ex.Status);
        Assert.Contains("policy.tokenBuckets", ex.Errors!["batchBuckets"][0], StringComparison.Ordinal);
    }
}
