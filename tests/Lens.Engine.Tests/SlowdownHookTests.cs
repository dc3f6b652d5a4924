using System.Diagnostics;
using Lens.Core;

namespace Lens.Engine.Tests;

/// <summary>Slowdown injection: a slowed cell's steps wait until m times their own time has passed, prefill and decode alike.</summary>
public sealed class SlowdownHookTests
{
    private static readonly BucketSet Buckets = new([16, 32], [16, 32, 64]);

    [Fact]
    public void No_slowdown_waits_nothing()
    {
        var hook = new SlowdownHook(Buckets);
        Assert.Equal(1, hook.Multiplier(BucketKind.Decode, 1));
        Assert.Equal(1, hook.Get(BucketId.Parse("prefill-32")));
        Assert.Equal(0, SlowdownHook.Stall(Stopwatch.GetTimestamp() - Stopwatch.Frequency, 1));
    }

    [Fact]
    public void A_step_waits_until_m_times_its_own_time_has_passed()
    {
        // A step begun 2 ms ago at m = 1.5 owes at least 1 ms more (a lower bound: a busy machine may wait longer).
        var began = Stopwatch.GetTimestamp() - (2 * Stopwatch.Frequency / 1000);
        var waited = SlowdownHook.Stall(began, 1.5);
        Assert.True(waited >= Stopwatch.Frequency / 1000, $"waited {waited} ticks, less than 1 ms");

        // Each bucket and cell keeps its own multiplier.
        var hook = new SlowdownHook(Buckets, new Dictionary<string, double> { ["decode-32"] = 1.5 });
        Assert.Equal(1.5, hook.Multiplier(BucketKind.Decode, 1));
        Assert.Equal(1, hook.Multiplier(BucketKind.Decode, 0));
        Assert.Equal(1, hook.Multiplier(BucketKind.Prefill, 1));
        hook.Set(BucketId.Parse("prefill-32"), 2.75);
        Assert.Equal(2.75, hook.Multiplier(BucketKind.Prefill, 1));
        Assert.Equal(2.75, hook.Get(BucketId.Parse("prefill-32")));
    }

    [Fact]
    public void Multipliers_outside_1_to_100_and_buckets_not_of_the_engine_are_refused()
    {
        var hook = new SlowdownHook(Buckets);
        Assert.Throws<ArgumentOutOfRangeException>(() => hook.Set(BucketId.Parse("decode-32"), 0.99));
        Assert.Throws<ArgumentOutOfRangeException>(() => hook.Set(BucketId.Parse("decode-32"), 100.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => hook.Set(BucketId.Parse("decode-32"), double.PositiveInfinity));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => hook.Set(BucketId.Parse("decode-48"), 2));
        Assert.Contains("decode-48", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SlowdownHook(Buckets, new Dictionary<string, double> { ["prefill-16"] = 0 }));
    }

    [Fact]
    public void A_decode_cell_is_slowed_alone_and_the_per_bucket_form_slows_every_batch_bucket()
    {
        var hook = new SlowdownHook(Buckets, new Dictionary<string, double> { ["decode-32-b2"] = 2 }, [1, 2, 4]);
        Assert.Equal(2, hook.Get(new BucketId(BucketKind.Decode, 32, 2)));
        Assert.Equal(1, hook.Get(new BucketId(BucketKind.Decode, 32, 4)));
        Assert.Equal(1, hook.Get(BucketId.Parse("decode-32")));
        Assert.Equal(2, hook.Multiplier(BucketKind.Decode, 1, hook.BatchIndex(2)));
        Assert.Equal(1, hook.Multiplier(BucketKind.Decode, 1, hook.BatchIndex(1)));
        Assert.Equal(1, hook.Multiplier(BucketKind.Decode, 1, hook.BatchIndex(4)));
        Assert.Equal(1, hook.Multiplier(BucketKind.Decode, 2, hook.BatchIndex(2))); // decode-64-b2: another cell

        // decode-N: every batch bucket of the length bucket; decode-N-b1: the batch-1 cell only.
        var (bucket, cell) = SlowdownHook.Parse("decode-64");
        Assert.False(cell);
        hook.Set(bucket, 3, cell);
        Assert.All(new[] { 1, 2, 4 }, b => Assert.Equal(3, hook.Get(new BucketId(BucketKind.Decode, 64, b))));
        (bucket, cell) = SlowdownHook.Parse("decode-16-b1");
        Assert.True(cell);
        hook.Set(bucket, 1.5, cell);
        Assert.Equal(1.5, hook.Get(new BucketId(BucketKind.Decode, 16, 1)));
        Assert.Equal(1, hook.Get(new BucketId(BucketKind.Decode, 16, 2)));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => hook.Set(new BucketId(BucketKind.Decode, 32, 3), 2));
        Assert.Contains("decode-32-b3", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_engine_slows_only_the_named_cell_and_profiles_name_cells()
    {
        using var engine = ReferenceEngine.Create(TestProfiles.TinyBatch with
        {
            Slowdown = new Dictionary<string, double> { ["decode-32-b2"] = 3 },
        }, warmup: false);
        var alone = await engine.GenerateAsync(20, 30); // one request: every step at batch bucket 1
        Assert.All(alone.Steps, s => Assert.Equal(0, s.SlowdownMs));
        engine.SetCellSlowdown(new BucketId(BucketKind.Decode, 32, 1), 3);
        Assert.Equal(1, engine.GetSlowdown(new BucketId(BucketKind.Decode, 32, 4)));
        var slowed = await engine.GenerateAsync(20, 30);
        Assert.All(slowed.Steps, s => Assert.Equal(s.Bucket.Edge == 32, s.SlowdownMs > 0));

        var bad = Assert.Throws<EngineProfileException>(() => (TestProfiles.TinyBatch with
        {
            Slowdown = new Dictionary<string, double> { ["decode-32-b8"] = 2 },
        }).Validate("p.json"));
        Assert.Contains("slowdown.decode-32-b8", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_engine_stretches_each_step_of_a_slowed_cell_on_both_paths_and_counts_it()
    {
        // tiny: prefill 16, 32, 64; decode 16, 32, 64, 128 (after-append). I 20 (prefill-32), O 30: steps at lengths 21..49, 12 in
        // decode-32 and 17 in decode-64, the only steps that wait; the counters add up what the traces say each waited.
        using var engine = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);
        engine.SetSlowdown(BucketId.Parse("prefill-32"), 1.7);
        engine.SetSlowdown(BucketId.Parse("decode-32"), 1.3);
        engine.SetSlowdown(BucketId.Parse("decode-64"), 2.6);
        var before = engine.Counters;
        var result = await engine.GenerateAsync(20, 30);
        var after = engine.Counters;

        Assert.True(result.Prefill.SlowdownMs > 0);
        Assert.Equal([12, 17], result.Steps.CountBy(s => s.Bucket.Edge).Select(c => c.Value));
        Assert.All(result.Steps, s => Assert.True(s.SlowdownMs > 0 && s.SlowdownMs < s.Ms, $"step {s.Step}: {s.SlowdownMs} of {s.Ms} ms"));
        var traced = result.Prefill.SlowdownMs + result.Steps.Sum(s => s.SlowdownMs);
        Assert.Equal(traced, after.SlowdownMs - before.SlowdownMs, 0.0001 * 30); // each trace rounds to 100 ns (TimeSpan)
        Assert.Equal(29, after.DecodeSteps - before.DecodeSteps);

        engine.SetSlowdown(BucketId.Parse("decode-64"), 1);
        var plain = await engine.GenerateAsync(20, 30);
        Assert.Equal(result.Tokens, plain.Tokens);
        Assert.All(plain.Steps, s => Assert.Equal(s.Bucket.Edge == 32, s.SlowdownMs > 0));
    }
}
