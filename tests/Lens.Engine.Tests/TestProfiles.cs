using Lens.Core;

namespace Lens.Engine.Tests;

internal static class TestProfiles
{
    /// <summary>The shipped tiny profile: vocabulary 256; prefill 16, 32, 64; decode 16, 32, 64, 128; after-append.</summary>
    public static EngineProfile Tiny => EngineProfiles.Load("tiny");

    /// <summary>The shipped tiny-batch profile: tiny's model and buckets with batch buckets 1, 2, 4 (max_num_seqs 4).</summary>
    public static EngineProfile TinyBatch => EngineProfiles.Load("tiny-batch");

    /// <summary>
    /// Small enough to be quick, big enough that bucket costs are far apart: prefill 32 vs 256 rows, decode spans 64 vs 1024
    /// (attention over 1024 positions is more than the rest of a step).
    /// </summary>
    public static EngineProfile Medium => new()
    {
        Name = "medium-test",
        Layers = 2,
        Hidden = 128,
        Heads = 4,
        KvHeads = 2,
        Ffn = 256,
        Vocab = 512,
        Seed = 3,
        PrefillBuckets = [32, 256],
        DecodeBuckets = [64, 1024],
        Convention = DecodeConvention.AfterAppend,
    };

    /// <summary>The q-quantile by the nearest rank: a low one estimates the undisturbed cost (noise only ever slows).</summary>
    public static double Quantile(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
