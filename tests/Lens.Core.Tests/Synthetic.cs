namespace Lens.Core.Tests;

/// <summary>A noiseless step-function "device" with known A and S, timed by the model's own formula, step by step.</summary>
internal sealed class Synthetic(BucketSet buckets, double[] a, double[] s)
{
    public BucketSet Buckets { get; } = buckets;

    /// <summary>E2E by the naive per-step sum (the definition, O(O)).</summary>
    public double E2e(int input, int output)
    {
        var total = a[Buckets.PrefillIndex(input)];
        for (var k = 1; k <= output - 1; k++)
        {
            total += s[Buckets.DecodeIndex(Buckets.StepLength(input, k))];
        }

        return total;
    }

    public double Ttft(int input) => a[Buckets.PrefillIndex(input)];

    public IEnumerable<MeasuredRequest> Measure(IEnumerable<PlanRow> rows, Func<double>? noise = null, bool tag = true) =>
        rows.Select(r => new MeasuredRequest(r.InputLength, r.OutputLength, E2e(r.InputLength, r.OutputLength) * (1 + (noise?.Invoke() ?? 0)),
            null, tag ? r.Bucket : null));

    public static Synthetic Random(BucketSet buckets, int seed)
    {
        var rng = new Random(seed);
        var a = buckets.Prefill.Select(p => 5 + (p * 0.02) + rng.NextDouble()).ToArray();
        var s = buckets.Decode.Select(d => 0.5 + (d * 0.001) + (rng.NextDouble() * 0.2)).ToArray();
        return new Synthetic(buckets, a, s);
    }

    public static BucketSet RandomBuckets(Random rng, DecodeConvention convention = DecodeConvention.AfterAppend)
    {
        var decode = new SortedSet<int>();
        var n = rng.Next(1, 7);
        var edge = 0;
        for (var i = 0; i < n; i++)
        {
            edge += rng.Next(4, 300);
            decode.Add(edge);
        }

        var prefill = new SortedSet<int>(decode.Where(_ => rng.NextDouble() < 0.6));
        var maxPrompt = decode.ElementAt(rng.Next(decode.Count));
        prefill.RemoveWhere(p => p > maxPrompt);
        prefill.Add(maxPrompt);
        if (rng.NextDouble() < 0.5)
        {
            prefill.Add(Math.Max(1, maxPrompt / 3)); // an edge not shared with decode
        }

        return new BucketSet(prefill, decode, convention);
    }
}
