namespace Lens.Core.Tests;

/// <summary>A fitted model read under its scheduling policy: cells, names, what it serves, single-request predictions.</summary>
public class PolicyModelTests
{
    /// <summary>A model whose step cell (row value r, column edge c) costs <paramref name="step"/>(r, c) and prefill p costs <paramref name="prefill"/>(p).</summary>
    internal static DeploymentModel Model(BucketSet buckets, SchedulingPolicy policy, Func<int, int, double> step, Func<int, double> prefill)
    {
        var model = new DeploymentModel(buckets, [.. buckets.Prefill.Select(p => new PrefillValues(p, prefill(p), 0.1, double.NaN, 0, double.NaN))],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, step(b, d), 0.01, b)))], RepeatStatistic.Min, 0.02);
        return policy.IsDefault ? model : model.WithPolicy(policy);
    }

    internal static DeploymentModel Chunked() =>
        Model(new BucketSet([8], [8, 16, 32], DecodeConvention.AfterAppend, [4, 8]), SchedulingPolicy.ChunkedPrefill(8, [4, 8], 2),
            (t, k) => t + (k / 8.0), _ => double.NaN);

    internal static DeploymentModel Paged() =>
        Model(BucketSet.Paged([64, 128], [2, 4, 8], DecodeConvention.AfterAppend, [1, 2, 4]), SchedulingPolicy.PagedDecode(32),
            (b, blocks) => b + blocks, p => p / 8.0);

    [Fact]
    public void Paged_bucket_sets_count_blocks_so_a_prompt_may_exceed_the_largest_block_bucket_and_round_trip_through_model_files()
    {
        Assert.Throws<BucketSetException>(() => new BucketSet([64, 128], [2, 4, 8]));
        var model = Paged();
        Assert.True(model.Buckets.DecodeInBlocks);
        Assert.Equal("P=64,128 blocks=2,4,8 B=1,2,4 after-append", model.Buckets.ToString());
        var back = ModelJson.Deserialize(ModelJson.Serialize(model), "m.json");
        Assert.Equal(model.Buckets, back.Buckets);
        Assert.Equal(model.Policy, back.Policy);
        Assert.Contains("only paged execution", Assert.Throws<ArgumentException>(() =>
            PolicyScheduler.For(model.Buckets, SchedulingPolicy.Default)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cells_are_named_per_policy_and_read_the_models_table()
    {
        var padded = Model(new BucketSet([64], [64, 128], DecodeConvention.AfterAppend, [1, 2]), SchedulingPolicy.Default, (b, d) => b + d, p => p);
        Assert.Equal(["prefill-64", "decode-64", "decode-128", "decode-64-b2", "decode-128-b2"],
            Enumerable.Range(0, padded.Cells.Count).Select(padded.CellName));
        Assert.Equal(2 + 128, padded.CellMs(4));

        var paged = Paged();
        Assert.Equal("decode-b2-blocks4", paged.CellName(paged.Cells.Step(1, 1)));
        Assert.Equal(2 + 4, paged.CellMs(paged.Cells.Step(1, 1)));
        Assert.Equal(0.01, paged.CellStandardError(paged.Cells.Step(1, 1)), 12);

        var chunked = Chunked();
        Assert.Equal("step-t8-k32", chunked.CellName(chunked.Cells.Step(1, 2)));
        Assert.Equal(8 + 4, chunked.CellMs(chunked.Cells.Step(1, 2)));
        Assert.Equal(2, chunked.MaxNumSeqs);
    }

    [Fact]
    public void Requests_are_checked_under_the_policy_with_the_allowed_range()
    {
        var paged = Paged(); // capacity 8 blocks of 32 tokens: I + O <= 256; prompts <= 128
        Assert.Null(paged.CheckRequest(128, 128));
        Assert.Contains("allowed I + O <= 256", paged.CheckRequest(128, 129), StringComparison.Ordinal);
        Assert.Contains("above the longest prefill bucket 128", paged.CheckRequest(129, 1), StringComparison.Ordinal);
        Assert.Contains("request #1", Assert.Throws<RequestOutOfRangeException>(() =>
            paged.PredictMany([4, 200], [4, 100], new Prediction[2])).Message, StringComparison.Ordinal);

        var chunked = Chunked();
        Assert.Null(chunked.CheckRequest(20, 12)); // the prompt runs in chunks: no prefill bucket bounds it
        Assert.Contains("(allowed I + O <= 32)", chunked.CheckRequest(20, 13), StringComparison.Ordinal);
        Assert.Equal((31, 32), (Workload.Fit(chunked, [new TraceRequest(0, 40, 5)]).Requests[0].InputLength, Workload.Fit(chunked, [new TraceRequest(0, 40, 5)]).MaxSequence));
        Assert.Equal(0, Workload.FirstOutOfRange(chunked, [new TraceRequest(0, 40, 5)])!.Value.Index);
    }

    [Fact]
    public void A_single_request_is_the_policys_scheduler_run_on_it_alone()
    {
        // Chunked, budget 8: (10, 3) runs 8 prompt tokens at (t8, k8), 2 at (t4, k16) with its first token, then 2 decodes at (t4, k16).
        var chunked = Chunked();
        double t8k8 = 8 + 1, t4k16 = 4 + 2;
        var p = chunked.Predict(10, 3);
        Assert.Equal(t8k8 + t4k16, p.TtftMs, 12);
        Assert.Equal(t8k8 + (3 * t4k16), p.E2eMs, 12);
        Assert.Equal(t4k16, p.TpotMs, 12);
        Assert.True(p.E2eLowMs < p.E2eMs && p.E2eMs < p.E2eHighMs);
        Assert.Equal([("step-t4-k16", 3), ("step-t8-k8", 1)], chunked.Breakdown(10, 3).Select(s => (s.Bucket.Edge == 8 ? "step-t8-k8" : "step-t4-k16", s.Steps)));

        // Paged, blocks of 32: (60, 40) prefills at 64 (A = 8), then 39 decodes at lengths 61..99: 2 blocks up to 64, 3 or 4 after.
        var paged = Paged();
        var q = paged.Predict(60, 40);
        Assert.Equal(8, q.TtftMs, 12);
        Assert.Equal(8 + (4 * (1 + 2)) + (35 * (1 + 4)), q.E2eMs, 12);
    }
}
