namespace Lens.Core.Tests;

/// <summary>Plans per policy (method.md, "One fit for every policy"): reach, identifiability, unreachable cells and cost.</summary>
public class PolicyPlanTests
{
    [Fact]
    public void Prefill_first_padded_is_todays_plan_exactly()
    {
        var buckets = new BucketSet([128, 256, 512], [128, 256, 512, 1024], DecodeConvention.AfterAppend, [1, 2, 4]);
        var options = new PlanOptions(Repeats: 2, Seed: 9);
        var today = ProfilingPlanner.Create(buckets, options);
        var plan = PolicyPlanner.Create(buckets, SchedulingPolicy.Default, options);
        Assert.Equal(today.Rows, plan.Rows);
        Assert.Empty(plan.NotIdentifiable);
        Assert.Empty(plan.Unreachable);
        Assert.All(plan.Cells, c => Assert.True(c.Measurements >= 1, c.Name));
    }

    [Fact]
    public void Chunked_reaches_every_cell_a_step_can_fill_names_token_buckets_above_the_budget_and_costs_about_one_pass()
    {
        var buckets = new BucketSet([1024], [128, 256, 512, 1024], DecodeConvention.AfterAppend, [8, 32, 128, 256, 512]);
        var policy = SchedulingPolicy.ChunkedPrefill(256, [8, 32, 128, 256, 512], 8);
        var plan = PolicyPlanner.Create(buckets, policy);
        var cells = new StepCells(buckets, policy);

        // Token bucket 512 lies above the 256-token budget: no step fills it, and each of its cells is named with the reason.
        var above = plan.Unreachable.Where(u => u.Cell.StartsWith("step-t512-", StringComparison.Ordinal)).ToArray();
        Assert.Equal(4, above.Length);
        Assert.All(above, u => Assert.Contains("max_num_batched_tokens = 256", u.Reason, StringComparison.Ordinal));
        Assert.Equal(above.Length, plan.Unreachable.Count);
        Assert.Empty(plan.NotIdentifiable);
        foreach (var c in plan.Cells.Where(c => !c.Name.StartsWith("step-t512-", StringComparison.Ordinal)))
        {
            Assert.True(c.Measurements >= 2, $"{c.Name}: {c.Measurements} measurements");
        }

        // Decode cells (row 8: eight sequences decoding) come in pairs with different counts, as the paper's buckets do.
        Assert.All(plan.Cells.Where(c => c.Name.StartsWith("step-t8-", StringComparison.Ordinal)), c => Assert.True(c.DistinctCounts >= 2, c.Name));

        // Cost: requests and steps are those of the rows, and the decode passes dominate: about one pass over the context width.
        Assert.Equal(plan.Rows.Sum(r => r.Batch), plan.Cost.Requests);
        var scheduler = PolicyScheduler.For(buckets, policy);
        long steps = plan.Rows.Sum(r => PolicyDesign.CountsOf(scheduler, [.. Enumerable.Repeat(new RequestPair(r.InputLength, r.OutputLength), r.Batch)]).E2e.Sum(c => c.Steps));
        Assert.Equal(steps, plan.Cost.DecodeSteps);
        Assert.InRange(plan.Cost.DecodeSteps, 1024, 2 * 1024 + 512);
        Assert.Equal(cells.Count - buckets.Prefill.Length, plan.Cells.Count);
    }

    [Fact]
    public void Paged_pairs_each_batch_and_block_bucket_and_names_blocks_no_batch_can_reach()
    {
        // Blocks of 16 tokens, capacity 64 blocks, I + O <= 512: one row has at most 32 blocks, so block bucket 64 is beyond batch 1;
        // block bucket 1 holds a total of 1 block, which a batch of 2 rows (2 blocks at least) never has.
        var buckets = BucketSet.Paged([128, 256], [1, 8, 16, 32, 64], DecodeConvention.AfterAppend, [1, 2]);
        var policy = SchedulingPolicy.PagedDecode(16, maxModelLen: 512);
        var plan = PolicyPlanner.Create(buckets, policy);
        Assert.Empty(plan.NotIdentifiable);
        var unreachable = plan.Unreachable.ToDictionary(u => u.Cell, u => u.Reason);
        Assert.Contains("a multiple of 2", unreachable["decode-b2-blocks1"], StringComparison.Ordinal);
        Assert.Contains("KV capacity of 64 blocks", unreachable["decode-b1-blocks64"], StringComparison.Ordinal);
        Assert.Equal(2, unreachable.Count);

        // Every group is a batch bucket's worth of identical requests within the KV capacity and max_model_len.
        var scheduler = PolicyScheduler.For(buckets, policy);
        Assert.All(plan.Rows, r =>
        {
            Assert.Contains(r.Batch, buckets.Batch);
            Assert.Null(scheduler.CheckRequest(r.InputLength, r.OutputLength));
            Assert.True(r.Batch * scheduler.BlocksNeeded(r.InputLength, r.OutputLength) <= scheduler.KvCapacityBlocks, r.ToString());
        });

        // The pair of a cell reaches it: its long request's steps lie in the target cell.
        foreach (var pair in plan.Rows.Where(r => r.Role == PlanRole.Slope))
        {
            var counts = PolicyDesign.CountsOf(scheduler, [.. Enumerable.Repeat(new RequestPair(pair.InputLength, pair.OutputLength), pair.Batch)]).E2e;
            var target = $"decode-b{pair.Batch}-blocks{pair.Bucket.Edge}";
            Assert.Contains(counts, c => scheduler.Cells.Name(c.Cell) == target);
        }
    }

    [Fact]
    public void A_fit_names_cells_its_measurements_do_not_reach_or_cannot_separate()
    {
        var buckets = new BucketSet([64], [64, 128], DecodeConvention.AfterAppend, [4, 16]);
        var policy = SchedulingPolicy.ChunkedPrefill(16, [4, 16], 4);
        var truth = PolicyModelTests.Model(buckets, policy, (t, k) => 1 + (t / 8.0) + (k / 64.0), _ => double.NaN);

        // Only a prompt of 36 tokens, O = 1: steps of 16, 16 and 4 tokens at contexts 16, 32, 36: two steps of t16-k64 and one of t4-k64,
        // always in the ratio 2:1, so the two are confounded; nothing reaches context 128.
        var measured = PolicyDevice.Measure(truth, [new PlanRow(new BucketId(BucketKind.Decode, 64, 1), 36, 1, 0, PlanRole.Prefill)], 0, 1);
        var fit = PolicyFitter.Fit(buckets, policy, measured, RepeatStatistic.Min);
        var notes = fit.Unfitted.ToDictionary(c => c.Name, c => c.Note!);
        Assert.Contains("no measurement reaches it", notes["step-t4-k128"], StringComparison.Ordinal);
        Assert.Contains("no measurement reaches it", notes["step-t16-k128"], StringComparison.Ordinal);
        Assert.Contains("not identifiable", notes["step-t16-k64"], StringComparison.Ordinal);
        Assert.Contains("step-t4-k64", notes["step-t16-k64"], StringComparison.Ordinal);
        Assert.All(fit.Unfitted, c => Assert.True(double.IsNaN(c.Ms)));
    }
}
