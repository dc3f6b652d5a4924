using Lens.Core;

namespace Lens.Engine.Tests;

/// <summary>
/// The scheduler alone, with an executor that only records what it is asked to run: admission, slots, the policy's batch and
/// length buckets (method.md, "Batched serving", prefill-first), cancellation, the step log. Iterations are driven by the test
/// (no loop thread), so every expectation is exact and hand-computed.
/// </summary>
public sealed class SchedulerTests
{
    // Prefill 16, 32, 64; decode 16, 32, 64, 128; after-append (step k of a sequence runs at length I + k); batch buckets 1, 2, 4.
    private static readonly BucketSet Buckets = new([16, 32, 64], [16, 32, 64, 128]);
    private static readonly int[] Batches = [1, 2, 4];

    [Fact]
    public async Task Admits_first_come_first_served_into_free_slots_then_decodes_everyone_at_the_smallest_batch_bucket()
    {
        var (scheduler, executor, work, log) = Create(maxNumSeqs: 4);
        (int I, int O)[] arrivals = [(5, 3), (20, 2), (40, 4), (10, 2), (3, 2), (6, 1)];
        var tasks = arrivals.Select(a => scheduler.SubmitAsync(null, a.I, a.O, null, CancellationToken.None)).ToArray();
        Assert.Equal(6, scheduler.WaitingRequests);
        Assert.Empty(executor.Calls);

        // Iteration 1: four slots, so r0..r3 are admitted (prefill buckets 16, 32, 64, 16), then one step for all four at B 4 and
        // the bucket of the longest after this step's append: r2 at 41, decode-64. r1 and r3 have their two tokens and leave.
        scheduler.Iterate();
        Assert.Equal(
            ["prefill slot 0 I 5 pre 0", "prefill slot 1 I 20 pre 1", "prefill slot 2 I 40 pre 2", "prefill slot 3 I 10 pre 0",
                "decode B 4 D 2 rows 0@5 1@20 2@40 3@10"],
            executor.Take());
        Assert.Equal(2, scheduler.WaitingRequests);
        Assert.Equal(2, scheduler.InFlight);
        Assert.True(tasks[1].IsCompletedSuccessfully && tasks[3].IsCompletedSuccessfully);

        // Iteration 2: r4 takes the slot freed last (3); r5 (O 1) is done at its prefill and gives its slot (1) straight back;
        // then r0, r2, r4 decode at B 4 with a padded row.
        scheduler.Iterate();
        Assert.Equal(["prefill slot 3 I 3 pre 0", "prefill slot 1 I 6 pre 0", "decode B 4 D 2 rows 0@6 2@41 3@3"], executor.Take());
        Assert.Equal(0, scheduler.WaitingRequests);
        Assert.True(tasks[5].IsCompletedSuccessfully);

        // Iteration 3: r2 alone at B 1 (its third step, at length 43); then nothing is left to run.
        scheduler.Iterate();
        Assert.Equal(["decode B 1 D 2 rows 2@42"], executor.Take());
        scheduler.Iterate();
        Assert.Empty(executor.Take());

        var results = await Task.WhenAll(tasks);
        Assert.Equal([3, 2, 4, 2, 2, 1], results.Select(r => r.OutputLength));
        Assert.Equal([1000 + 5, 6, 7], results[0].Tokens); // the prefill's token, then each step's (the fake's: position + 1)
        Assert.Equal([(4, 4), (4, 3), (1, 1)], log.Since(0).Select(s => (s.Batch, s.Rows)));
        Assert.Equal([0L, 1, 2], results[2].Steps.Select(s => s.Index));
        Assert.Equal([(4, 4), (4, 3), (1, 1)], results[2].Steps.Select(s => (s.Batch, s.Rows)));
        Assert.Equal([41, 42, 43], results[2].Steps.Select(s => s.Length));
        Assert.Equal(new PrefillTrace(BucketId.Parse("prefill-64"), 64, 0, results[2].Prefill.Ms), results[2].Prefill);
        Assert.Equal(6, work.Snapshot().Requests);
    }

    [Fact]
    public async Task Cancelled_requests_are_failed_without_running_and_free_their_slot_before_the_next_step()
    {
        var (scheduler, executor, _, _) = Create(maxNumSeqs: 2);
        using var waiting = new CancellationTokenSource();
        using var flying = new CancellationTokenSource();
        var a = scheduler.SubmitAsync(null, 5, 10, null, flying.Token);
        var b = scheduler.SubmitAsync(null, 6, 10, null, waiting.Token);
        var c = scheduler.SubmitAsync(null, 7, 10, null, CancellationToken.None);
        scheduler.Iterate();
        Assert.Equal(["prefill slot 0 I 5 pre 0", "prefill slot 1 I 6 pre 0", "decode B 2 D 0 rows 0@5 1@6"], executor.Take());

        flying.Cancel(); // a, in flight, leaves before the next step; c takes its slot
        scheduler.Iterate();
        Assert.Equal(["prefill slot 0 I 7 pre 0", "decode B 2 D 0 rows 1@7 0@7"], executor.Take());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a);

        var d = scheduler.SubmitAsync(null, 8, 10, null, waiting.Token);
        waiting.Cancel(); // b and c are in flight; d, waiting, is failed when its turn comes
        scheduler.Iterate();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => b);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => d);
        Assert.Equal(["decode B 1 D 0 rows 0@8"], executor.Take()); // b's slot is free, d never ran: c alone
        Assert.False(c.IsCompleted);
    }

    [Theory]
    [InlineData(new[] { 10 }, 1, 0)] // lengths after this step's append: 11
    [InlineData(new[] { 10, 15 }, 2, 0)] // 16: still decode-16 (after-append)
    [InlineData(new[] { 10, 16, 3 }, 4, 1)] // 17: decode-32, three rows padded to B 4
    [InlineData(new[] { 100, 1, 2, 3 }, 4, 3)]
    public void The_policy_decodes_at_the_smallest_batch_bucket_and_the_bucket_of_the_longest(int[] inputs, int batch, int bucket)
    {
        var policy = new PrefillFirstPolicy(Buckets, Batches);
        var inFlight = inputs.Select(i => InFlight(i, produced: 1)).ToArray();

        Assert.Equal(ScheduledStep.Decode(inputs.Length, batch, bucket), policy.Next(new SchedulerView(inFlight, null, 4 - inputs.Length)));

        // A waiting request and a free slot come first (admission before the decode of the iteration); without a slot it waits.
        var next = new Sequence(null, 33, 2, streamed: false, CancellationToken.None);
        var admit = policy.Next(new SchedulerView(inFlight, next, 1));
        Assert.Equal(ScheduledStep.Admit(prefillBucket: 2), admit);
        Assert.Equal(StepKind.Decode, policy.Next(new SchedulerView(inFlight, next, 0)).Kind);
        Assert.Equal(ScheduledStep.Idle, policy.Next(new SchedulerView([], null, 4)));
    }

    [Fact]
    public void Before_append_the_policy_picks_the_bucket_one_token_earlier()
    {
        var policy = new PrefillFirstPolicy(new BucketSet([16], [16, 32], DecodeConvention.BeforeAppend), Batches);
        Assert.Equal(0, policy.Next(new SchedulerView([InFlight(15, produced: 2)], null, 3)).LengthBucket); // 15 + 2 - 1 = 16
        Assert.Equal(1, policy.Next(new SchedulerView([InFlight(15, produced: 3)], null, 3)).LengthBucket); // 17
    }

    [Fact]
    public async Task A_policy_is_a_class_the_scheduler_follows_step_by_step()
    {
        // A policy that decodes only the oldest sequence at B 1: the scheduler runs exactly that, the others keep their place.
        var executor = new RecordingExecutor();
        var scheduler = new Scheduler(executor, new OldestOnlyPolicy(), 2, new EngineWork(), new StepLog(), "test");
        var a = scheduler.SubmitAsync(null, 5, 2, null, CancellationToken.None);
        var b = scheduler.SubmitAsync(null, 9, 3, null, CancellationToken.None);
        scheduler.Iterate();
        scheduler.Iterate();
        scheduler.Iterate();
        Assert.Equal(
            ["prefill slot 0 I 5 pre 0", "prefill slot 1 I 9 pre 0", "decode B 1 D 0 rows 0@5", "decode B 1 D 0 rows 1@9",
                "decode B 1 D 0 rows 1@10"],
            executor.Take());
        Assert.Equal([6], (await a).Steps.Select(s => s.Length));
        Assert.Equal([10, 11], (await b).Steps.Select(s => s.Length));
    }

    [Fact]
    public async Task With_one_slot_the_caller_runs_its_request_alone_and_sees_each_token_before_the_next_step()
    {
        var (scheduler, executor, _, log) = Create(maxNumSeqs: 1);
        var seen = new List<string>();
        var result = await scheduler.SubmitAsync([3, 1, 4], 3, 4, token =>
        {
            seen.Add($"token {token} after {executor.Calls.Count} calls");
            return ValueTask.CompletedTask;
        }, CancellationToken.None);

        Assert.Equal(
            ["prefill slot 0 I 3 pre 0", "decode B 1 D 0 rows 0@3", "decode B 1 D 0 rows 0@4", "decode B 1 D 0 rows 0@5"],
            executor.Take());
        Assert.Equal(["token 1003 after 1 calls", "token 4 after 2 calls", "token 5 after 3 calls", "token 6 after 4 calls"], seen);
        Assert.Equal([1003, 4, 5, 6], result.Tokens);
        Assert.Equal(3, log.Since(0).Count);
        Assert.Equal(0, scheduler.WaitingRequests);
    }

    private static (Scheduler Scheduler, RecordingExecutor Executor, EngineWork Work, StepLog Log) Create(int maxNumSeqs)
    {
        var executor = new RecordingExecutor();
        var work = new EngineWork();
        var log = new StepLog();
        var scheduler = new Scheduler(executor, new PrefillFirstPolicy(Buckets, Batches.Where(b => b <= maxNumSeqs).ToArray()),
            maxNumSeqs, work, log, "test");
        return (scheduler, executor, work, log);
    }

    private static Sequence InFlight(int input, int produced) =>
        new(null, input, produced + 5, streamed: false, CancellationToken.None) { Produced = produced };

    private sealed class OldestOnlyPolicy : ISchedulingPolicy
    {
        public ScheduledStep Next(SchedulerView view) =>
            view.FreeSlots > 0 && view.NextWaiting is not null ? ScheduledStep.Admit(0)
            : view.InFlight.IsEmpty ? ScheduledStep.Idle
            : ScheduledStep.Decode(1, 1, 0);
    }
}
