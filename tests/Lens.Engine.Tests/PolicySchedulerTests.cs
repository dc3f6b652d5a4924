using Lens.Core;

namespace Lens.Engine.Tests;

/// <summary>
/// The chunked and paged policies driven through the scheduler with an executor that only records what it is asked to run
/// (method.md, "Scheduling policies"): hand-worked staged traces give the exact steps, chunks and cells, budget splitting and
/// waits for a slot or for KV blocks. Iterations are driven by the test (no loop thread).
/// </summary>
public sealed class PolicySchedulerTests
{
    [Fact]
    public async Task Chunked_steps_give_decodes_one_token_then_prompt_chunks_first_come_first_served_within_the_budget()
    {
        // Context buckets 16, 32, 64, 128; token buckets 2, 4, 8; budget 8 tokens; 2 sequences in flight at most.
        var contexts = new BucketSet([16, 32, 64], [16, 32, 64, 128]);
        var policy = new ChunkedPolicy(contexts, SchedulingPolicy.ChunkedPrefill(8, [2, 4, 8], 2));
        var executor = new RecordingExecutor();
        var log = new StepLog();
        var scheduler = new Scheduler(executor, policy, 2, new EngineWork(), log, "test");
        Assert.True(scheduler.Batched);
        var a = scheduler.SubmitAsync(null, 20, 3, null, CancellationToken.None);
        var b = scheduler.SubmitAsync(null, 5, 2, null, CancellationToken.None);
        var c = scheduler.SubmitAsync(null, 3, 2, null, CancellationToken.None);

        string[] expected =
        [
            "mixed T 8 K 0 rows 0@0+8",            // a joins and takes the whole budget; b waits though a slot is free
            "mixed T 8 K 0 rows 0@8+8",            // a's context after the step is 16: still K 16
            "mixed T 8 K 1 rows 0@16+4 1@0+4",     // a's last 4 prompt tokens (its first token), b joins with the 4 left
            "mixed T 2 K 1 rows 0@20+1 1@4+1",     // a decodes first; b's last prompt token (its first token); c has no slot
            "mixed T 2 K 1 rows 0@21+1 1@5+1",     // both decode and finish
            "mixed T 4 K 0 rows 1@0+3",            // c takes the slot freed last, its whole prompt in a step of 3 tokens
            "mixed T 2 K 0 rows 1@3+1",
        ];
        foreach (var step in expected)
        {
            scheduler.Iterate();
            Assert.Equal([step], executor.Take());
        }

        scheduler.Iterate();
        Assert.Empty(executor.Take());
        Assert.Equal([20, 21, 22], (await a).Tokens); // the first token from the last prompt row (position 19), then decodes
        Assert.Equal([5, 6], (await b).Tokens);
        Assert.Equal([3, 4], (await c).Tokens);
        Assert.Equal([21, 22], (await a).Steps.Select(s => s.Length));
        Assert.Equal([3L, 4], (await a).Steps.Select(s => s.Index));
        Assert.Equal([(8, 8), (8, 8), (8, 8), (2, 2), (2, 2), (4, 3), (2, 1)], log.Since(0).Select(s => (s.Batch, s.Rows)));
        Assert.All(log.Since(0), s => Assert.Equal(EngineStepKind.Mixed, s.Kind));
    }

    [Fact]
    public void The_chunked_policy_joins_only_with_a_free_slot_and_budget_left_and_picks_the_smallest_buckets()
    {
        var policy = new ChunkedPolicy(new BucketSet([16], [16, 32]), SchedulingPolicy.ChunkedPrefill(6, [2, 4, 8], 4));
        var decoding = new Sequence(null, 10, 5, streamed: false, CancellationToken.None) { Prefilled = 10, Produced = 2 };
        var prompting = new Sequence(null, 30, 5, streamed: false, CancellationToken.None) { Prefilled = 12 };
        var waiting = new Sequence(null, 4, 2, streamed: false, CancellationToken.None);

        // 1 decode + min(18, 5) = 6: the budget is spent, the waiting request stays in the queue even with free slots.
        var step = policy.Next(new SchedulerView([decoding, prompting], waiting, 2));
        Assert.Equal(ScheduledStep.Mixed(6, 8, 1), step); // 6 tokens in token bucket 8; context 12 + 5 = 17: bucket 32
        Assert.Equal((1, 5), (decoding.Scheduled, prompting.Scheduled));

        // With only the decode in flight the request joins (budget left 5), and with no slot it does not.
        Assert.Equal(StepKind.Join, policy.Next(new SchedulerView([decoding], waiting, 1)).Kind);
        Assert.Equal(ScheduledStep.Mixed(1, 2, 0), policy.Next(new SchedulerView([decoding], waiting, 0))); // context 12
        Assert.Equal(ScheduledStep.Idle, policy.Next(new SchedulerView([], null, 4)));
    }

    [Fact]
    public async Task Paged_admission_waits_for_kv_blocks_and_decode_steps_run_at_the_block_bucket_of_the_batchs_blocks()
    {
        // Block size 4, block buckets 2, 4, 8, 16 blocks (KV capacity 16 blocks), batch buckets 1, 2, 4 (4 slots).
        var buckets = new BucketSet([8, 16], [2, 4, 8, 16]);
        var policy = new PagedPolicy(buckets, [1, 2, 4], blockSize: 4);
        var executor = new RecordingExecutor([8, 16], [2, 4, 8, 16]);
        var log = new StepLog();
        var scheduler = new Scheduler(executor, policy, 4, new EngineWork(), log, "test");
        // Needs ceil((I + O) / 4): a 4 blocks, b 8, c 7, d 2.
        var a = scheduler.SubmitAsync(null, 10, 6, null, CancellationToken.None);
        var b = scheduler.SubmitAsync(null, 16, 16, null, CancellationToken.None);
        var c = scheduler.SubmitAsync(null, 5, 20, null, CancellationToken.None);
        var d = scheduler.SubmitAsync(null, 3, 2, null, CancellationToken.None);

        // a and b reserve 12 blocks; c's 7 do not fit beside them (19 > 16), so c waits with slots free, and d behind it.
        // Blocks after the append: a at 11 (3) + b at 17 (5) = 8 -> bucket 8 (index 2).
        scheduler.Iterate();
        Assert.Equal(["prefill slot 0 I 10 pre 1", "prefill slot 1 I 16 pre 1", "decode B 2 D 2 rows 0@10 1@16"], executor.Take());
        Assert.Equal(2, scheduler.WaitingRequests);

        // a at 12, 13, 14, 15 (3, 4, 4, 4 blocks) beside b at 18..21 (5, 5, 5, 6): 8, 9, 9, 10 blocks -> buckets 8, 16, 16, 16.
        string[] steps = ["decode B 2 D 2 rows 0@11 1@17", "decode B 2 D 3 rows 0@12 1@18", "decode B 2 D 3 rows 0@13 1@19",
            "decode B 2 D 3 rows 0@14 1@20"];
        foreach (var step in steps)
        {
            scheduler.Iterate();
            Assert.Equal([step], executor.Take());
        }

        Assert.Equal(6, (await a).OutputLength);

        // a has left: 8 blocks reserved, c's 7 fit (15), d's 2 do not (17). b at 22 (6 blocks) + c at 6 (2) = 8 -> bucket 8.
        scheduler.Iterate();
        Assert.Equal(["prefill slot 0 I 5 pre 0", "decode B 2 D 2 rows 1@21 0@5"], executor.Take());
        Assert.Equal(1, scheduler.WaitingRequests);

        // d is admitted only once b has left (its 8 blocks freed), right before the next step.
        while (!b.IsCompleted)
        {
            scheduler.Iterate();
            Assert.Equal(1, scheduler.WaitingRequests);
        }

        var bLast = (await b).Steps[^1].Index;
        Assert.All(executor.Take(), call => Assert.StartsWith("decode B 2 ", call));
        scheduler.Iterate();
        Assert.Equal("prefill slot 1 I 3 pre 0", executor.Take().SkipLast(1).Single());
        while (!c.IsCompleted || !d.IsCompleted)
        {
            scheduler.Iterate();
        }

        Assert.Equal(bLast + 1, (await d).Steps[0].Index);
        Assert.Equal(15, (await b).Steps.Count);
        Assert.Equal(19, (await c).Steps.Count);
    }
}
