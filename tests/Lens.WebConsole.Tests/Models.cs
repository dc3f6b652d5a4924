using Lens.Core;

namespace Lens.WebConsole.Tests;

/// <summary>Hand-made fitted models: A = 10 ms per prefill bucket step up, S = 1 ms per step per decode bucket step up.</summary>
internal static class Models
{
    /// <summary>P = 16,32,64; D = 16,32,64,128; A[16] = 10, A[32] = 20, A[64] = 40; S[16] = 1, S[32] = 2, S[64] = 3, S[128] = 4.</summary>
    public static DeploymentModel Tiny()
    {
        var buckets = new BucketSet([16, 32, 64], [16, 32, 64, 128]);
        PrefillValues A(int edge, double ms) => new(edge, ms, 0.1, ms, 0.1, 0);
        return new DeploymentModel(buckets, [A(16, 10), A(32, 20), A(64, 40)],
            [new DecodeValues(16, 1, 0.01), new DecodeValues(32, 2, 0.01), new DecodeValues(64, 3, 0.01), new DecodeValues(128, 4, 0.01)],
            RepeatStatistic.Min, 0.01);
    }

    /// <summary><see cref="Tiny"/>'s edges with batch buckets 1, 2, 4: a step at batch b costs (1 + b / 4) times the batch-1 step.</summary>
    public static DeploymentModel TinyBatched()
    {
        var tiny = Tiny();
        var buckets = new BucketSet([16, 32, 64], [16, 32, 64, 128], batch: [1, 2, 4]);
        return new DeploymentModel(buckets, [.. tiny.PrefillBuckets],
            [.. buckets.Batch.SelectMany(b => tiny.DecodeBuckets.Select(d => d with { StepMs = d.StepMs * (1 + (b / 4.0)), Batch = b }))],
            RepeatStatistic.Min, 0.01);
    }
}
