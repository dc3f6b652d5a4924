using Lens.Core;

namespace Lens.Console.Tests;

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
}
