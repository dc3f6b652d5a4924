using Lens.Core;

namespace Lens.Engine.Tests;

/// <summary>Slowdown injection: the extra layer passes a step owes, decided once per step for prefill and decode alike.</summary>
public sealed class SlowdownHookTests
{
    private static readonly BucketSet Buckets = new([16, 32], [16, 32, 64]);

    [Fact]
    public void No_slowdown_owes_nothing()
    {
        var hook = new SlowdownHook(Buckets);
        Assert.All(Enumerable.Range(0, 10), _ => Assert.Equal(0, hook.ShadowPasses(BucketKind.Decode, 1, 3.7)));
        Assert.Equal(1, hook.Get(BucketId.Parse("prefill-32")));
    }

    [Fact]
    public void Fractions_carry_over_so_that_the_work_is_m_times_the_buckets()
    {
        // m = 1.5 on passes of 3 layer-equivalents: 1.5 extra per step, owed as 1, 2, 1, 2, ...
        var hook = new SlowdownHook(Buckets, new Dictionary<string, double> { ["decode-32"] = 1.5 });
        var owed = Enumerable.Range(0, 8).Select(_ => hook.ShadowPasses(BucketKind.Decode, 1, 3)).ToArray();
        Assert.Equal([1, 2, 1, 2, 1, 2, 1, 2], owed);

        // Other buckets, and the prefill bucket of the same edge, keep their own multiplier and credit.
        Assert.Equal(0, hook.ShadowPasses(BucketKind.Decode, 0, 3));
        Assert.Equal(0, hook.ShadowPasses(BucketKind.Prefill, 1, 3));
        hook.Set(BucketId.Parse("prefill-32"), 2.75); // 3.5 extra per pass of 2
        Assert.Equal([3, 4, 3, 4], Enumerable.Range(0, 4).Select(_ => hook.ShadowPasses(BucketKind.Prefill, 1, 2)));
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
        Assert.Equal([1, 1, 1], Enumerable.Range(0, 3).Select(_ => hook.ShadowPasses(BucketKind.Decode, 1, 1, hook.BatchIndex(2))));
        Assert.Equal(0, hook.ShadowPasses(BucketKind.Decode, 1, 1, hook.BatchIndex(1)));
        Assert.Equal(0, hook.ShadowPasses(BucketKind.Decode, 1, 1, hook.BatchIndex(4)));
        Assert.Equal(0, hook.ShadowPasses(BucketKind.Decode, 2, 1, hook.BatchIndex(2))); // decode-64-b2: another cell

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
        Assert.All(alone.Steps, s => Assert.Equal(0, s.ShadowLayerPasses));
        engine.SetCellSlowdown(new BucketId(BucketKind.Decode, 32, 1), 3);
        Assert.Equal(1, engine.GetSlowdown(new BucketId(BucketKind.Decode, 32, 4)));
        var slowed = await engine.GenerateAsync(20, 30);
        Assert.All(slowed.Steps, s => Assert.Equal(s.Bucket.Edge == 32, s.ShadowLayerPasses > 0));

        var bad = Assert.Throws<EngineProfileException>(() => (TestProfiles.TinyBatch with
        {
            Slowdown = new Dictionary<string, double> { ["decode-32-b8"] = 2 },
        }).Validate("p.json"));
        Assert.Contains("slowdown.decode-32-b8", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_engine_applies_the_hook_once_per_step_on_both_paths()
    {
        // tiny: prefill 16, 32, 64; decode 16, 32, 64, 128 (after-append). I 20 (prefill-32), O 30: steps at lengths 21..49, 12 in
        // decode-32 and 17 in decode-64. A hook fed the same passes once per step owes
        // exactly what each step ran; twice per step would owe about twice as much.
        var profile = TestProfiles.Tiny;
        using var engine = ReferenceEngine.Create(profile, warmup: false);
        engine.SetSlowdown(BucketId.Parse("prefill-32"), 1.7);
        engine.SetSlowdown(BucketId.Parse("decode-32"), 1.3);
        engine.SetSlowdown(BucketId.Parse("decode-64"), 2.6);
        var before = engine.Counters;
        var result = await engine.GenerateAsync(20, 30);
        var after = engine.Counters;

        var buckets = engine.Buckets;
        var runner = new ModelRunner(profile, buckets.MaxSequence + 2, 1, buckets.MaxPrompt, buckets.MaxSequence);
        var expected = new SlowdownHook(buckets, new Dictionary<string, double>
        {
            ["prefill-32"] = 1.7, ["decode-32"] = 1.3, ["decode-64"] = 2.6,
        });
        Assert.Equal(expected.ShadowPasses(BucketKind.Prefill, 1, runner.PrefillPassUnits(32)), result.Prefill.ShadowLayerPasses);
        var steps = result.Steps.Select(s => expected.ShadowPasses(BucketKind.Decode, buckets.DecodeIndex(s.Bucket.Edge),
            runner.DecodePassUnits(s.AttentionSpan))).ToArray();
        Assert.Equal([12, 17], result.Steps.CountBy(s => s.Bucket.Edge).Select(c => c.Value));
        Assert.Equal(steps, result.Steps.Select(s => s.ShadowLayerPasses));
        Assert.Contains(steps, n => n > 0);
        Assert.Equal(result.Prefill.ShadowLayerPasses + steps.Sum(), after.ShadowLayerPasses - before.ShadowLayerPasses);
        Assert.Equal(29, after.DecodeSteps - before.DecodeSteps);
    }
}
