namespace Lens.Core.Tests;

/// <summary>The step-by-step reference scheduler of every policy on hand-worked traces (method.md, "Scheduling policies").</summary>
public class PolicySchedulerTests
{
    [Fact]
    public void Prefill_first_padded_prefills_alone_then_decodes_everyone_at_the_longest_sequences_bucket()
    {
        // P = 64; D = 64, 128; B = 1, 2, 4. r0 (60, 3) and r1 (10, 2) at 0.
        var scheduler = PolicyScheduler.For(new BucketSet([64], [64, 128], DecodeConvention.AfterAppend, [1, 2, 4]), SchedulingPolicy.Default);
        var steps = Run(scheduler, [new(0, 60, 3), new(0, 10, 2)]);
        Assert.Equal(["prefill-64", "prefill-64", "decode-64-b2", "decode-64"], Names(scheduler, steps));
        Assert.Equal([new PromptChunk(0, 60)], steps[0].Prompt);
        Assert.Equal([0], steps[0].FirstToken);
        Assert.Equal([1], steps[1].FirstToken);
        Assert.Equal([0, 1], steps[2].Decode);
        Assert.Equal([1], steps[2].Finished);
        Assert.Equal(61, steps[2].Length);
        Assert.Equal([0], steps[3].Finished);
    }

    [Fact]
    public void Paged_admits_the_head_only_when_its_whole_kv_need_fits_and_buckets_decode_by_total_blocks()
    {
        // P = 8; block buckets 2, 4, 8 (capacity 8 blocks of 4 tokens); B = 1, 2, 4.
        // r0 (4, 6) needs 3 blocks; r1 (8, 16) needs 6: 3 + 6 > 8, so it waits for r0, and r2 (1, 2), which would fit, waits behind it.
        var scheduler = PolicyScheduler.For(new BucketSet([8], [2, 4, 8], DecodeConvention.AfterAppend, [1, 2, 4]), SchedulingPolicy.PagedDecode(4));
        Assert.Equal(8, scheduler.KvCapacityBlocks);
        Assert.Equal(32, scheduler.MaxSequence);
        var steps = Run(scheduler, [new(0, 4, 6), new(0, 8, 16), new(0, 1, 2)]);
        string[] expected =
        [
            "prefill-8",
            .. Enumerable.Repeat("decode-b1-blocks2", 4), // lengths 5..8: 2 blocks
            "decode-b1-blocks4",                          // length 9: 3 blocks; r0 done
            "prefill-8", "prefill-8",                     // r1 and r2 reserve 6 + 1 <= 8 blocks
            "decode-b2-blocks4",                          // 3 + 1 blocks; r2 done
            .. Enumerable.Repeat("decode-b1-blocks4", 7), // lengths 10..16: 3 or 4 blocks
            .. Enumerable.Repeat("decode-b1-blocks8", 7), // lengths 17..23: 5 or 6 blocks; r1 done
        ];
        Assert.Equal(expected, Names(scheduler, steps));
        Assert.Equal([0], steps[5].Finished);
        Assert.Equal([new PromptChunk(1, 8)], steps[6].Prompt);
        Assert.Equal([new PromptChunk(2, 1)], steps[7].Prompt);
        Assert.Equal(4, steps[8].Length);
        Assert.Equal([2], steps[8].Finished);
        Assert.Equal(6, steps[^1].Length);
        Assert.Equal([1], steps[^1].Finished);
    }

    [Fact]
    public void Paged_refuses_a_request_whose_kv_need_exceeds_the_capacity_naming_its_row_and_range()
    {
        var scheduler = PolicyScheduler.For(new BucketSet([8], [2, 4, 8], DecodeConvention.AfterAppend, [1, 2]), SchedulingPolicy.PagedDecode(4));
        var error = Assert.Throws<RequestOutOfRangeException>(() => Run(scheduler, [new(0, 4, 4), new(0, 8, 25)]));
        Assert.Contains("row 2", error.Message, StringComparison.Ordinal);
        Assert.Contains("needs 9 KV blocks of 4 tokens, above the KV capacity of 8 blocks (allowed I + O <= 32)", error.Message, StringComparison.Ordinal);
        var bounded = PolicyScheduler.For(scheduler.Buckets, SchedulingPolicy.PagedDecode(4, maxModelLen: 20));
        Assert.Contains("above max_model_len 20 (allowed I + O <= 20)", bounded.CheckRequest(8, 13), StringComparison.Ordinal);
        Assert.Null(bounded.CheckRequest(8, 12));
    }

    [Fact]
    public void Chunked_steps_give_decodes_a_token_first_then_split_the_budget_over_prompts_first_come_first_served()
    {
        // Budget 8, token buckets 4, 8; context buckets 8, 16, 32; max_num_seqs 2. r0 (10, 3), r1 (5, 2), r2 (3, 1) at 0.
        var policy = SchedulingPolicy.ChunkedPrefill(8, [4, 8], 2);
        var scheduler = PolicyScheduler.For(new BucketSet([8], [8, 16, 32], DecodeConvention.AfterAppend, [4, 8]), policy);
        var steps = Run(scheduler, [new(0, 10, 3), new(0, 5, 2), new(0, 3, 1)]);
        Assert.Equal(["step-t8-k8", "step-t8-k16", "step-t4-k16", "step-t4-k16"], Names(scheduler, steps));

        // 1: r0's first chunk takes the whole budget.
        Assert.Equal([new PromptChunk(0, 8)], steps[0].Prompt);
        Assert.Empty(steps[0].FirstToken);
        // 2: r0's last 2 tokens, then r1 admitted with min(5, 6); r2 waits for a slot; 7 tokens, longest context 10.
        Assert.Equal([new PromptChunk(0, 2), new PromptChunk(1, 5)], steps[1].Prompt);
        Assert.Equal([0, 1], steps[1].FirstToken);
        Assert.Equal((7, 10), (steps[1].Tokens, steps[1].Length));
        // 3: both decode (contexts 11 and 6); r1 has its 2 tokens and leaves. No slot for r2.
        Assert.Equal([0, 1], steps[2].Decode);
        Assert.Empty(steps[2].Prompt);
        Assert.Equal([1], steps[2].Finished);
        Assert.Equal((2, 11), (steps[2].Tokens, steps[2].Length));
        // 4: r0 decodes (context 12) and leaves; r2 takes the free slot, its whole prompt, and is done with its one token.
        Assert.Equal([0], steps[3].Decode);
        Assert.Equal([new PromptChunk(2, 3)], steps[3].Prompt);
        Assert.Equal([0, 2], steps[3].Finished);
        Assert.Equal((4, 12), (steps[3].Tokens, steps[3].Length));
    }

    [Fact]
    public void Chunked_needs_its_token_buckets_as_the_step_tables_rows_and_a_budget_for_every_sequence()
    {
        var buckets = new BucketSet([8], [8, 16, 32], DecodeConvention.AfterAppend, [4, 8]);
        Assert.Contains("are not the token buckets", Assert.Throws<ArgumentException>(() =>
            PolicyScheduler.For(buckets.WithBatch([1]), SchedulingPolicy.ChunkedPrefill(8, [4, 8], 2))).Message, StringComparison.Ordinal);
        Assert.Contains("maxNumSeqs 16 is above maxNumBatchedTokens 8", Assert.Throws<ArgumentException>(() =>
            PolicyScheduler.For(buckets, SchedulingPolicy.ChunkedPrefill(8, [4, 8], 16))).Message, StringComparison.Ordinal);
        var scheduler = PolicyScheduler.For(buckets, SchedulingPolicy.ChunkedPrefill(8, [4, 8], 2));
        Assert.Contains("above the longest context bucket 32 (allowed I + O <= 32)", scheduler.CheckRequest(30, 3), StringComparison.Ordinal);
        Assert.Null(scheduler.CheckRequest(30, 2)); // a prompt longer than every prefill bucket runs in chunks
    }

    [Fact]
    public void Step_counts_give_each_request_of_a_group_its_cells_before_its_first_token_and_its_end()
    {
        var padded = PolicyScheduler.For(new BucketSet([64], [64, 128], DecodeConvention.AfterAppend, [1, 2, 4]), SchedulingPolicy.Default);
        var group = StepCounts.Of(padded, [new RequestPair(60, 3), new RequestPair(60, 3)]);
        // b = 2 identical requests: prefills back to back, then 2 steps at (2, 64): E2E = 2 A + 2 S[2, 64] for both.
        Assert.Equal([new CellCount(0, 1)], group[0].Ttft.ToArray());
        Assert.Equal([new CellCount(0, 2)], group[1].Ttft.ToArray());
        Assert.All(group, g => Assert.Equal([new CellCount(0, 2), new CellCount(padded.Cells.Step(1, 0), 2)], g.E2e.ToArray()));
        Assert.Equal("decode-64-b2", padded.Cells.Name(padded.Cells.Step(1, 0)));

        var chunked = PolicyScheduler.For(new BucketSet([8], [8, 16, 32], DecodeConvention.AfterAppend, [4, 8]),
            SchedulingPolicy.ChunkedPrefill(8, [4, 8], 2));
        var counts = StepCounts.Of(chunked, [new RequestPair(10, 3), new RequestPair(5, 2), new RequestPair(3, 1)]);
        int t8k8 = chunked.Cells.Step(1, 0), t8k16 = chunked.Cells.Step(1, 1), t4k16 = chunked.Cells.Step(0, 1);
        Assert.Equal(1, chunked.Cells.PrefillCells);
        Assert.False(chunked.Cells.UsesPrefill);
        Assert.Equal([new CellCount(t4k16, 1), new CellCount(t8k8, 1), new CellCount(t8k16, 1)], counts[1].E2e.ToArray());
        Assert.Equal([new CellCount(t8k8, 1), new CellCount(t8k16, 1)], counts[0].Ttft.ToArray());
        Assert.Equal([new CellCount(t4k16, 2), new CellCount(t8k8, 1), new CellCount(t8k16, 1)], counts[2].E2e.ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void The_prefill_first_padded_reference_gives_the_serving_simulations_times(int seed)
    {
        var rng = new Random(seed);
        var buckets = Synthetic.RandomBuckets(rng, seed % 2 == 0 ? DecodeConvention.AfterAppend : DecodeConvention.BeforeAppend).WithBatch([1, 2, 4, 8]);
        var model = new DeploymentModel(buckets, [.. buckets.Prefill.Select(p => new PrefillValues(p, 3 + (p * 0.01), 0, 2 + (p * 0.005), 0, double.NaN))],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, 0.5 + (0.3 * b) + (d * 0.002) + rng.NextDouble(), 0, b)))],
            RepeatStatistic.Min, 0);
        var trace = new Workload { RequestsPerSecond = 40, Count = 300, Seed = seed, MaxOutput = 50 }.Generate(buckets).Requests;
        var times = new Times(trace.Count);
        PolicyScheduler.For(model).Run(trace, StepCosts.Of(model), times);
        var fast = ServingSimulation.Simulate(model, trace);
        for (var k = 0; k < trace.Count; k++)
        {
            Assert.Equal(fast.Requests[k].FirstTokenMs, times.First[k], 1e-9 * Math.Max(1, times.First[k]));
            Assert.Equal(fast.Requests[k].FinishMs, times.Finish[k], 1e-9 * Math.Max(1, times.Finish[k]));
        }
    }

    internal static List<ScheduledStep> Run(PolicyScheduler scheduler, IReadOnlyList<TraceRequest> requests)
    {
        var sink = new Recorder();
        scheduler.Run(requests, StepCosts.Unit, sink);
        return sink.Steps;
    }

    private static string[] Names(PolicyScheduler scheduler, List<ScheduledStep> steps) => [.. steps.Select(s => scheduler.Cells.Name(s.Cell))];

    private sealed class Recorder : IStepSink
    {
        public List<ScheduledStep> Steps { get; } = [];

        public void Step(ScheduledStep step) => Steps.Add(step);
    }

    /// <summary>Each request's first-token and finish times from the steps.</summary>
    internal sealed class Times(int count) : IStepSink
    {
        public double[] First { get; } = new double[count];

        public double[] Finish { get; } = new double[count];

        public void Step(ScheduledStep step)
        {
            foreach (var id in step.FirstToken)
            {
                First[id] = step.FirstTokenAtMs;
            }

            foreach (var id in step.Finished)
            {
                Finish[id] = step.EndMs;
            }
        }
    }
}
