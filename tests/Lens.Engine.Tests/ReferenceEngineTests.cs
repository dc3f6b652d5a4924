using Lens.Core;

namespace Lens.Engine.Tests;

/// <summary>Exact, structural checks of the engine: bucket choice, padding, cache moves, token counts, determinism, slowdowns.</summary>
public sealed class ReferenceEngineTests : IDisposable
{
    private readonly ReferenceEngine _engine = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);

    public void Dispose() => _engine.Dispose();

    [Theory]
    [InlineData(1, 16)]
    [InlineData(16, 16)]
    [InlineData(17, 32)]
    [InlineData(32, 32)]
    [InlineData(33, 64)]
    [InlineData(64, 64)]
    public async Task Prefill_pads_the_prompt_to_its_bucket(int inputLength, int bucket)
    {
        var before = _engine.Counters;
        var result = await _engine.GenerateAsync(inputLength, 1);
        Assert.Equal(new BucketId(BucketKind.Prefill, bucket), result.Prefill.Bucket);
        Assert.Equal(bucket, result.Prefill.PaddedLength);
        Assert.Equal(bucket, _engine.Counters.PrefillRows - before.PrefillRows);
        Assert.Empty(result.Steps);
        Assert.Single(result.Tokens);
    }

    [Theory]
    [InlineData(1, 127)]
    [InlineData(15, 3)]
    [InlineData(16, 20)]
    [InlineData(17, 60)]
    [InlineData(40, 88)]
    [InlineData(64, 64)]
    public async Task Each_decode_step_uses_the_bucket_of_method_md(int inputLength, int outputLength)
    {
        var decode = TestProfiles.Tiny.DecodeBuckets;
        var result = await _engine.GenerateAsync(inputLength, outputLength);
        Assert.Equal(outputLength, result.Tokens.Count);
        Assert.Equal(outputLength - 1, result.Steps.Count);
        for (var k = 1; k < outputLength; k++)
        {
            var step = result.Steps[k - 1];
            var expected = decode.First(d => d >= inputLength + k); // dec(I + k) = min{d >= I + k}
            Assert.Equal(k, step.Step);
            Assert.Equal(inputLength + k, step.Length);
            Assert.Equal(new BucketId(BucketKind.Decode, expected), step.Bucket);
            Assert.Equal(expected, step.AttentionSpan);
            var previous = k == 1 ? (int?)null : decode.First(d => d >= inputLength + k - 1);
            Assert.Equal(previous is not null && previous != expected, step.CacheMoved);
        }

        Assert.Equal(result.Steps.Count(s => s.CacheMoved), result.CacheMoves);
    }

    [Fact]
    public async Task A_hand_computed_request_crosses_one_edge()
    {
        // I = 16, O = 20: prefill in 16; steps k = 1..16 at lengths 17..32 in decode-32; k = 17..19 at 33..35 in decode-64.
        var before = _engine.Counters;
        var result = await _engine.GenerateAsync(16, 20);
        Assert.Equal(16, result.Prefill.PaddedLength);
        Assert.All(result.Steps.Take(16), s => Assert.Equal(32, s.Bucket.Edge));
        Assert.All(result.Steps.Skip(16), s => Assert.Equal(64, s.Bucket.Edge));
        Assert.Equal([17], result.Steps.Where(s => s.CacheMoved).Select(s => s.Step));
        var after = _engine.Counters;
        Assert.Equal(1, after.CacheMoves - before.CacheMoves);
        Assert.Equal(1, after.CacheHandoffs - before.CacheHandoffs);
        Assert.Equal(19, after.DecodeSteps - before.DecodeSteps);
        Assert.Equal((16 * 32) + (3 * 64), after.AttentionPositions - before.AttentionPositions);
        Assert.Equal(1, after.Requests - before.Requests);
    }

    [Fact]
    public async Task Before_append_convention_picks_one_token_earlier()
    {
        using var engine = ReferenceEngine.Create(TestProfiles.Tiny with { Convention = DecodeConvention.BeforeAppend }, warmup: false);
        var result = await engine.GenerateAsync(16, 20);
        for (var k = 1; k < 20; k++)
        {
            var expected = TestProfiles.Tiny.DecodeBuckets.First(d => d >= 16 + k - 1);
            Assert.Equal(expected, result.Steps[k - 1].Bucket.Edge);
            Assert.Equal(expected + 1, result.Steps[k - 1].AttentionSpan); // the buffer also holds the token being appended
        }

        Assert.Equal(16, result.Steps[0].Bucket.Edge);
        Assert.Equal([2, 18], result.Steps.Where(s => s.CacheMoved).Select(s => s.Step));

        // The longest request still fits: I + O = 128, the last step at length 127 picks dec(126) = 128.
        var longest = await engine.GenerateAsync(64, 64);
        Assert.Equal(128, longest.Steps[^1].Bucket.Edge);
    }

    [Fact]
    public async Task Decode_work_is_flat_inside_a_bucket_and_linear_in_output_length()
    {
        // Every step in decode-128 scores all 128 positions, whatever its real length: the work of O steps is (O - 1) * 128.
        foreach (var o in new[] { 2, 10, 30, 60 })
        {
            var before = _engine.Counters;
            var result = await _engine.GenerateAsync(64, o);
            Assert.All(result.Steps, s => Assert.Equal(128, s.AttentionSpan));
            Assert.Equal((o - 1) * 128L, _engine.Counters.AttentionPositions - before.AttentionPositions);
        }
    }

    [Fact]
    public async Task Generates_exactly_O_tokens_and_streams_each_as_it_exists()
    {
        var seen = new List<int>();
        var result = await _engine.GenerateAsync([5, 6, 7], 50, t =>
        {
            seen.Add(t);
            return ValueTask.CompletedTask;
        });
        Assert.Equal(50, result.OutputLength);
        Assert.Equal(result.Tokens, seen);
        Assert.All(seen, t => Assert.InRange(t, 0, 255));
        Assert.True(result.TtftMs <= result.E2eMs);
        Assert.True(result.TtftMs >= result.Prefill.Ms);
    }

    [Fact]
    public async Task Same_prompt_gives_same_tokens_across_runs_and_engines()
    {
        var a = await _engine.GenerateAsync(20, 40);
        var b = await _engine.GenerateAsync(20, 40);
        using var other = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);
        var c = await other.GenerateAsync(_engine.SyntheticPrompt(20), 40);
        Assert.Equal(a.Tokens, b.Tokens);
        Assert.Equal(a.Tokens, c.Tokens);

        using var reseeded = ReferenceEngine.Create(TestProfiles.Tiny with { Seed = 2 }, warmup: false);
        var d = await reseeded.GenerateAsync(_engine.SyntheticPrompt(20), 40);
        Assert.NotEqual(a.Tokens, d.Tokens);
    }

    [Fact]
    public async Task Several_threads_compute_the_same_tokens()
    {
        using var parallel = ReferenceEngine.Create(TestProfiles.Tiny with { Threads = 2 }, warmup: false);
        var prompt = _engine.SyntheticPrompt(40);
        var one = await _engine.GenerateAsync(prompt, 50);
        var two = await parallel.GenerateAsync(prompt, 50);
        Assert.Equal(one.Tokens, two.Tokens);
        Assert.Equal(one.Steps.Select(s => s.Bucket), two.Steps.Select(s => s.Bucket));
    }

    [Fact]
    public async Task Padding_and_bucket_size_do_not_change_the_tokens()
    {
        // Masking is exact: the same model with one big prefill bucket and one big decode bucket generates the same tokens.
        using var flat = ReferenceEngine.Create(TestProfiles.Tiny with { PrefillBuckets = [64], DecodeBuckets = [128] }, warmup: false);
        var prompt = _engine.SyntheticPrompt(20);
        var bucketed = await _engine.GenerateAsync(prompt, 30);
        var single = await flat.GenerateAsync(prompt, 30);
        Assert.Equal(64, single.Prefill.PaddedLength);
        Assert.Equal(32, bucketed.Prefill.PaddedLength);
        Assert.Equal(bucketed.Tokens, single.Tokens);
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 0)]
    [InlineData(65, 1)]
    [InlineData(64, 65)]
    [InlineData(100, 10)]
    public async Task Lengths_outside_the_buckets_are_refused(int inputLength, int outputLength)
    {
        await Assert.ThrowsAsync<RequestOutOfRangeException>(() => _engine.GenerateAsync(inputLength, outputLength));
        if (inputLength > 0)
        {
            await Assert.ThrowsAsync<RequestOutOfRangeException>(() => _engine.GenerateAsync(new int[inputLength], outputLength));
        }
    }

    [Fact]
    public async Task The_largest_request_is_served()
    {
        var result = await _engine.GenerateAsync(64, 64);
        Assert.Equal(64, result.OutputLength);
        Assert.Equal(128, result.Steps[^1].Bucket.Edge);
        Assert.Equal(127, result.Steps[^1].Length);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(256)]
    public async Task Token_ids_outside_the_vocabulary_are_refused(int id)
    {
        var ex = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => _engine.GenerateAsync([1, id], 2));
        Assert.IsNotType<RequestOutOfRangeException>(ex);
        Assert.Contains("0..255", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Slowdown_stretches_the_steps_of_that_bucket_only_and_keeps_the_tokens()
    {
        var plain = await _engine.GenerateAsync(20, 40);
        var bucket = new BucketId(BucketKind.Decode, 32);
        _engine.SetSlowdown(bucket, 2.0);
        Assert.Equal(2.0, _engine.GetSlowdown(bucket));
        var slowed = await _engine.GenerateAsync(20, 40);
        _engine.SetSlowdown(bucket, 1.0);

        Assert.Equal(plain.Tokens, slowed.Tokens);
        Assert.All(plain.Steps, s => Assert.Equal(0, s.SlowdownMs));
        Assert.All(slowed.Steps.Where(s => s.Bucket != bucket), s => Assert.Equal(0, s.SlowdownMs));
        Assert.Equal(0, slowed.Prefill.SlowdownMs);
        var inBucket = slowed.Steps.Where(s => s.Bucket == bucket).ToArray();
        Assert.Equal(12, inBucket.Length); // lengths 21..32
        Assert.All(inBucket, s => Assert.True(s.SlowdownMs > 0));
    }

    [Fact]
    public async Task Slowdown_from_the_profile_applies_to_prefill()
    {
        var profile = TestProfiles.Tiny with { Slowdown = new Dictionary<string, double> { ["prefill-32"] = 3 } };
        using var engine = ReferenceEngine.Create(profile, warmup: false);
        Assert.Equal(3, engine.GetSlowdown(BucketId.Parse("prefill-32")));
        var slowed = await engine.GenerateAsync(20, 3);
        var plain = await engine.GenerateAsync(10, 3);
        Assert.True(slowed.Prefill.SlowdownMs > 0);
        Assert.Equal(0, plain.Prefill.SlowdownMs);
        Assert.All(slowed.Steps, s => Assert.Equal(0, s.SlowdownMs));
    }

    [Fact]
    public void Slowdown_is_checked()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _engine.SetSlowdown(BucketId.Parse("decode-48"), 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => _engine.SetSlowdown(BucketId.Parse("decode-32"), 0.9));
        Assert.Throws<ArgumentOutOfRangeException>(() => _engine.SetSlowdown(BucketId.Parse("decode-32"), double.NaN));
    }

    [Fact]
    public async Task Requests_run_one_at_a_time()
    {
        var running = 0;
        var overlap = false;
        async ValueTask OnToken(int token)
        {
            await Task.Yield();
            overlap |= Volatile.Read(ref running) != 1;
        }

        async Task<GenerationResult> One(int i)
        {
            await Task.Yield();
            var task = _engine.GenerateAsync(10 + i, 20, async t =>
            {
                Interlocked.Increment(ref running);
                await OnToken(t);
                Interlocked.Decrement(ref running);
            });
            return await task;
        }

        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(One));
        Assert.False(overlap);
        Assert.All(results, r => Assert.Equal(20, r.OutputLength));
    }

    [Fact]
    public async Task Cancellation_stops_between_steps()
    {
        using var cts = new CancellationTokenSource();
        var count = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _engine.GenerateAsync(10, 100, _ =>
        {
            if (++count == 5)
            {
                cts.Cancel();
            }

            return ValueTask.CompletedTask;
        }, cts.Token));
        Assert.Equal(5, count);
        Assert.Equal(3, (await _engine.GenerateAsync(10, 3)).OutputLength); // the engine is free again
    }

    [Fact]
    public async Task Warmup_touches_every_bucket()
    {
        using var engine = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);
        var rounds = engine.Warmup(maxRounds: 3);
        Assert.Equal(3, rounds);
        var counters = engine.Counters;
        Assert.Equal(3 + 3, counters.PrefillPasses); // 3 rounds of the shortest bucket, then all three buckets
        Assert.Equal((3 * 4 * 3) + (4 * 3), counters.DecodeSteps);
        Assert.Equal(0, counters.Requests);
        Assert.Equal(2, (await engine.GenerateAsync(3, 2)).OutputLength);
    }

    [Fact]
    public async Task Disposed_engine_refuses_work()
    {
        var engine = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);
        engine.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => engine.GenerateAsync(3, 2));
    }

    [Fact]
    public void Synthetic_prompt_is_deterministic_and_inside_the_vocabulary()
    {
        var a = _engine.SyntheticPrompt(64);
        Assert.Equal(a, _engine.SyntheticPrompt(64));
        Assert.All(a, t => Assert.InRange(t, 0, 255));
        Assert.True(a.Distinct().Count() > 20);
    }
}
