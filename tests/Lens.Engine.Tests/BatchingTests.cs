using Lens.Core;

namespace Lens.Engine.Tests;

/// <summary>
/// Continuous batching on tiny-batch (batch buckets 1, 2, 4; decode buckets 16, 32, 64, 128; after-append), exact and
/// timing-free: requests are submitted while the scheduler is paused, so that they are admitted in one iteration, and every
/// expectation is hand-computed from method.md, "Batched serving".
/// </summary>
public sealed class BatchingTests : IDisposable
{
    private readonly ReferenceEngine _engine = ReferenceEngine.Create(TestProfiles.TinyBatch, warmup: false);

    public void Dispose() => _engine.Dispose();

    [Fact]
    public async Task Three_requests_decode_at_B4_padded_then_B2_then_B1_in_the_bucket_of_the_longest()
    {
        // A (I 10, O 4), B (I 20, O 8), C (I 28, O 12), admitted together. Step s runs C at length 28 + s, the longest:
        // D = 32 for s <= 4, 64 from s = 5 (B's and C's caches move up). A leaves after step 3, B after step 7, C after 11.
        var before = _engine.Counters;
        var (a, b, c) = await Together(() => _engine.GenerateAsync(10, 4), () => _engine.GenerateAsync(20, 8),
            () => _engine.GenerateAsync(28, 12));
        var steps = _engine.StepsSince(before.DecodeSteps);

        Assert.Equal([4, 4, 4, 2, 2, 2, 2, 1, 1, 1, 1], steps.Select(s => s.Batch));
        Assert.Equal([3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1], steps.Select(s => s.Rows));
        Assert.Equal([32, 32, 32, 32, 64, 64, 64, 64, 64, 64, 64], steps.Select(s => s.Bucket.Edge));
        Assert.Equal([0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0], steps.Select(s => s.CacheMoves));
        Assert.Equal([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0], steps.Select(s => s.PaddedRows));

        var after = _engine.Counters;
        Assert.Equal(11, after.DecodeSteps - before.DecodeSteps);
        Assert.Equal(3, after.PaddedRows - before.PaddedRows);
        Assert.Equal(2, after.CacheMoves - before.CacheMoves);
        Assert.Equal(3, after.CacheHandoffs - before.CacheHandoffs);
        Assert.Equal(3, after.PrefillPasses - before.PrefillPasses);
        Assert.Equal(3, after.Requests - before.Requests);
        Assert.Equal((3 * 4 * 32) + (2 * 32) + (3 * 2 * 64) + (4 * 64), after.AttentionPositions - before.AttentionPositions);

        // Each request's own trace names the steps it shared.
        Assert.Equal([before.DecodeSteps, before.DecodeSteps + 1, before.DecodeSteps + 2], a.Steps.Select(s => s.Index));
        Assert.All(a.Steps, s => Assert.Equal((4, 3, 32), (s.Batch, s.Rows, s.Bucket.Edge)));
        Assert.Equal(steps.Take(7).Select(s => (s.Batch, s.Bucket)), b.Steps.Select(s => (s.Batch, s.Bucket)));
        Assert.Equal(steps.Select(s => (s.Batch, s.Bucket, s.Index)), c.Steps.Select(s => (s.Batch, s.Bucket, s.Index)));
        Assert.Equal([5], b.Steps.Where(s => s.CacheMoved).Select(s => s.Step));
        Assert.Equal([5], c.Steps.Where(s => s.CacheMoved).Select(s => s.Step));
        Assert.DoesNotContain(a.Steps, s => s.CacheMoved);
        Assert.Equal([4, 8, 12], new[] { a, b, c }.Select(r => r.OutputLength));
        Assert.Equal(Enumerable.Range(29, 11), c.Steps.Select(s => s.Length));
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 4)]
    [InlineData(4, 4)]
    public async Task A_group_released_at_once_is_admitted_together_and_ends_together(int size, int batch)
    {
        // The profiler's group: b identical requests (I 17, O 15: steps at lengths 18..31, all in decode-32).
        var before = _engine.Counters;
        var results = await All(size, () => _engine.GenerateAsync(17, 15));
        var steps = _engine.StepsSince(before.DecodeSteps);

        Assert.Equal(14, steps.Count);
        Assert.All(steps, s => Assert.Equal((batch, size, 32), (s.Batch, s.Rows, s.Bucket.Edge)));
        Assert.Equal(14L * (batch - size), _engine.Counters.PaddedRows - before.PaddedRows);
        Assert.Equal(size, _engine.Counters.PrefillPasses - before.PrefillPasses);
        foreach (var result in results)
        {
            Assert.Equal(steps.Select(s => s.Index), result.Steps.Select(s => s.Index)); // the same steps: they end together
            Assert.All(result.Steps, s => Assert.Equal((batch, size), (s.Batch, s.Rows)));
            Assert.Equal(results[0].Tokens, result.Tokens);
            Assert.Equal(32, result.Prefill.PaddedLength);
        }
    }

    [Fact]
    public async Task A_requests_tokens_are_the_same_alone_and_in_any_batch()
    {
        // Four different prompts, crossing edges at different steps, run alone on tiny (the one-at-a-time engine) and together
        // (then three of them, with a padded row) on tiny-batch, single- and two-threaded: every request's tokens are identical.
        int[][] prompts = [_engine.SyntheticPrompt(9), [.. Enumerable.Range(100, 31)], [7, 7, 7], [.. Enumerable.Range(0, 60).Select(i => (i * 37) % 256)]];
        int[] outputs = [40, 20, 60, 50];
        using var alone = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);
        var expected = new List<IReadOnlyList<int>>();
        for (var i = 0; i < prompts.Length; i++)
        {
            expected.Add((await alone.GenerateAsync(prompts[i], outputs[i])).Tokens);
        }

        using var threaded = ReferenceEngine.Create(TestProfiles.TinyBatch with { Threads = 2 }, warmup: false);
        foreach (var engine in new[] { _engine, threaded })
        {
            var four = await Submit(engine, Enumerable.Range(0, 4).Select(i => (Func<Task<GenerationResult>>)(() =>
                engine.GenerateAsync(prompts[i], outputs[i]))).ToArray());
            Assert.Contains(four[0].Steps, s => s.Rows == 4);
            var third = four[2].Steps; // D is 128 while the 60-token prompt runs, then shrinks to 64: the cache is copied down
            Assert.Equal([64, 128, 64], third.Select(s => s.Bucket.Edge).Where((d, k) => k == 0 || third[k - 1].Bucket.Edge != d));
            Assert.Equal([5, 50], third.Where(s => s.CacheMoved).Select(s => s.Step));
            var three = await Submit(engine, Enumerable.Range(1, 3).Select(i => (Func<Task<GenerationResult>>)(() =>
                engine.GenerateAsync(prompts[i], outputs[i]))).ToArray());
            Assert.Contains(three[0].Steps, s => s is { Rows: 3, Batch: 4 });
            for (var i = 0; i < prompts.Length; i++)
            {
                Assert.Equal(expected[i], four[i].Tokens);
                Assert.Equal(expected[i], (await engine.GenerateAsync(prompts[i], outputs[i])).Tokens);
                if (i > 0)
                {
                    Assert.Equal(expected[i], three[i - 1].Tokens);
                }
            }
        }
    }

    [Fact]
    public async Task Max_num_seqs_bounds_the_rows_in_flight_and_the_rest_wait_first_come_first_served()
    {
        // Six requests (I 5; O 3, 5, 8, 8, 4, 4) for four slots. Step 1: r0..r3. r0 leaves after step 2, so r4 is admitted before
        // step 3; r1 leaves after step 4, so r5 before step 5; r4 leaves after step 5; r2, r3 and r5 after step 7.
        var before = _engine.Counters.DecodeSteps;
        int[] outputs = [3, 5, 8, 8, 4, 4];
        Task<GenerationResult>[] tasks;
        using (_engine.Pause())
        {
            tasks = outputs.Select(o => _engine.GenerateAsync(5, o)).ToArray();
            Assert.Equal(6, _engine.WaitingRequests);
        }

        var results = await Task.WhenAll(tasks);
        var steps = _engine.StepsSince(before);
        Assert.Equal([4, 4, 4, 4, 4, 3, 3], steps.Select(s => s.Rows));
        Assert.All(steps, s => Assert.Equal(4, s.Batch));
        Assert.Equal([0, 0, 0, 0, 2, 4], results.Select(r => r.Steps[0].Index - before));
        Assert.Equal([1, 3, 6, 6, 4, 6], results.Select(r => r.Steps[^1].Index - before));
        Assert.Equal(0, _engine.WaitingRequests);
    }

    [Fact]
    public async Task Requests_of_one_token_finish_at_their_prefill_and_free_their_slot_at_once()
    {
        // Five requests for four slots, three of them O = 1: all five are admitted in the first iteration, and only B (O 5) and
        // E (O 3) decode: two steps at B = 2, then B alone at B = 1.
        var before = _engine.Counters;
        var r = await Submit(_engine, () => _engine.GenerateAsync(10, 1), () => _engine.GenerateAsync(20, 5),
            () => _engine.GenerateAsync(30, 1), () => _engine.GenerateAsync(40, 1), () => _engine.GenerateAsync(12, 3));
        var steps = _engine.StepsSince(before.DecodeSteps);
        Assert.Equal([2, 2, 1, 1], steps.Select(s => s.Batch));
        Assert.Equal([2, 2, 1, 1], steps.Select(s => s.Rows));
        Assert.All(new[] { r[0], r[2], r[3] }, one =>
        {
            Assert.Single(one.Tokens);
            Assert.Empty(one.Steps);
        });
        Assert.Equal(5, r[1].OutputLength);
        Assert.Equal(3, r[4].OutputLength);
        Assert.Equal(before.DecodeSteps, r[4].Steps[0].Index);
        var after = _engine.Counters;
        Assert.Equal(5, after.PrefillPasses - before.PrefillPasses);
        Assert.Equal(2, after.CacheHandoffs - before.CacheHandoffs); // B and E; a request of one token has no decode cache
        Assert.Equal(5, after.Requests - before.Requests);
    }

    [Fact]
    public async Task A_request_cancelled_while_waiting_is_never_admitted()
    {
        using var cts = new CancellationTokenSource();
        var before = _engine.Counters;
        Task<GenerationResult> kept, cancelled;
        using (_engine.Pause())
        {
            kept = _engine.GenerateAsync(5, 4);
            cancelled = _engine.GenerateAsync(6, 4, null, cts.Token);
            await cts.CancelAsync();
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.All((await kept).Steps, s => Assert.Equal(1, s.Rows));
        Assert.Equal(1, _engine.Counters.PrefillPasses - before.PrefillPasses);
    }

    [Fact]
    public async Task Streamed_tokens_reach_each_caller_in_order_and_a_cancelled_request_leaves_the_batch()
    {
        // Three streamed requests of 100 tokens; the third cancels itself from its own token callback when its second token arrives
        // (no race with a pause: whatever the machine's speed, 97 more slowed steps remain), and it leaves the batch at a later
        // iteration while the two others run to their end.
        foreach (var edge in TestProfiles.TinyBatch.DecodeBuckets)
        {
            _engine.SetSlowdown(new BucketId(BucketKind.Decode, edge), 100); // slow steps (same tokens): the cancellation lands early
        }

        var seen = new[] { new List<int>(), new List<int>(), new List<int>() };
        using var cts = new CancellationTokenSource();
        var before = _engine.Counters.DecodeSteps;
        Task<GenerationResult>[] tasks;
        using (_engine.Pause())
        {
            tasks = Enumerable.Range(0, 3).Select(i => _engine.GenerateAsync(8 + i, 100, t =>
            {
                lock (seen[i])
                {
                    seen[i].Add(t);
                    if (i == 2 && seen[i].Count == 2)
                    {
                        cts.Cancel();
                    }
                }

                return ValueTask.CompletedTask;
            }, i == 2 ? cts.Token : default)).ToArray();
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => tasks[2]);
        var done = await Task.WhenAll(tasks[..2]);
        var steps = _engine.StepsSince(before);
        var cancelledAt = steps.Count(st => st.Rows == 3);
        Assert.InRange(cancelledAt, 1, 98);
        Assert.All(steps.Take(cancelledAt), s => Assert.Equal((4, 3), (s.Batch, s.Rows)));
        Assert.All(steps.Skip(cancelledAt), s => Assert.Equal((2, 2), (s.Batch, s.Rows)));
        Assert.Equal(99, steps.Count);
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(done[i].Tokens, seen[i]);
            Assert.Equal((await _engine.GenerateAsync(8 + i, 100)).Tokens, done[i].Tokens);
        }

        Assert.Equal(0, _engine.WaitingRequests);
        Assert.Equal(4, (await All(4, () => _engine.GenerateAsync(3, 2))).Length); // every slot is free again
    }

    [Fact]
    public async Task A_failing_token_callback_fails_its_request_only_and_frees_its_slot()
    {
        // A stream whose consumer throws (a client that went away): its request fails with that error, the others are untouched.
        Task<GenerationResult> failing, other;
        using (_engine.Pause())
        {
            failing = _engine.GenerateAsync(5, 40, t => throw new InvalidOperationException("client gone"));
            other = _engine.GenerateAsync(6, 40);
        }

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => failing);
        Assert.Equal("client gone", ex.Message);
        Assert.Equal(40, (await other).OutputLength);
        Assert.All(await All(4, () => _engine.GenerateAsync(3, 3)), r => Assert.Equal(4, r.Steps[0].Rows)); // every slot is free
        Assert.Equal(0, _engine.WaitingRequests);
    }

    [Fact]
    public async Task A_disposed_engine_refuses_work()
    {
        var engine = ReferenceEngine.Create(TestProfiles.TinyBatch, warmup: false);
        Assert.Equal(2, (await engine.GenerateAsync(5, 2)).OutputLength);
        engine.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => engine.GenerateAsync(5, 5));
        engine.Dispose();
    }

    [Fact]
    public async Task Step_costs_cover_every_batch_and_decode_bucket_with_steps_inside_it()
    {
        var table = await StepCosts.MeasureAsync(_engine, stepsPerCell: 5, prefillRuns: 2);
        Assert.Equal("tiny-batch", table.Profile);
        Assert.Equal(
            from b in new[] { 1, 2, 4 } from d in new[] { 16, 32, 64, 128 } select (b, d, 5),
            table.Steps.Select(s => (s.Batch, s.DecodeBucket, s.Steps)));
        Assert.All(table.Steps, s => Assert.InRange(s.P10Ms, double.Epsilon, s.MedianMs));
        Assert.Equal([(16, 2), (32, 2), (64, 2)], table.Prefills.Select(p => (p.Bucket, p.Runs)));
        Assert.All(table.Prefills, p => Assert.InRange(p.MinMs, double.Epsilon, p.MedianMs));
    }

    private Task<GenerationResult[]> All(int count, Func<Task<GenerationResult>> request) =>
        Submit(_engine, Enumerable.Repeat(request, count).ToArray());

    private async Task<(GenerationResult, GenerationResult, GenerationResult)> Together(params Func<Task<GenerationResult>>[] requests)
    {
        var r = await Submit(_engine, requests);
        return (r[0], r[1], r[2]);
    }

    /// <summary>Submits every request while the scheduler is paused, so that one iteration admits them all in order.</summary>
    private static async Task<GenerationResult[]> Submit(ReferenceEngine engine, params Func<Task<GenerationResult>>[] requests)
    {
        Task<GenerationResult>[] tasks;
        using (engine.Pause())
        {
            tasks = requests.Select(r => r()).ToArray();
        }

        return await Task.WhenAll(tasks);
    }
}
