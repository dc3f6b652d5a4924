namespace Lens.Core;

/// <summary>
/// Bucket sets of real serving stacks (method.md, "Bucket sets of real serving stacks").
/// Each generator is the stack's documented rule, not a guess fitted to any engine.
/// </summary>
public static class BucketPresets
{
    /// <summary>Names accepted by <see cref="Create"/>.</summary>
    public static readonly IReadOnlyList<string> Names = ["nxdi", "neuronx", "linear"];

    /// <summary>
    /// AWS NxD Inference: powers of two from 128 below the maximum, then the maximum itself
    /// (2048 -> 128, 256, 512, 1024, 2048; 3000 -> ..., 2048, 3000). Prefill up to <paramref name="maxContext"/>,
    /// decode up to <paramref name="seqLen"/>.
    /// </summary>
    public static BucketSet NxdInference(int maxContext, int seqLen, DecodeConvention convention = DecodeConvention.AfterAppend) =>
        new(PowersOfTwoThenMax(maxContext, "max context"), PowersOfTwoThenMax(seqLen, "sequence length"), convention);

    /// <summary>
    /// transformers-neuronx: token buckets are powers of two from 128 up to <c>n_positions</c> (the last one being
    /// <c>n_positions</c> itself); context buckets default to half of each token bucket.
    /// </summary>
    public static BucketSet TransformersNeuronx(int nPositions, DecodeConvention convention = DecodeConvention.AfterAppend)
    {
        var token = PowersOfTwoThenMax(nPositions, "n_positions");
        var context = token.Select(t => Math.Max(1, t / 2)).Distinct().ToArray();
        return new BucketSet(context, token, convention);
    }

    /// <summary>Linear steps <c>min, min+step, ..., max</c> (vLLM on Gaudi's linear bucketing); <paramref name="max"/> is always included.</summary>
    public static int[] Linear(int min, int step, int max)
    {
        if (min <= 0 || step <= 0 || max < min)
        {
            throw new BucketSetException($"linear buckets need 0 < min <= max and step > 0; got min={min}, step={step}, max={max}");
        }

        var edges = new List<int>();
        for (long e = min; e < max; e += step)
        {
            edges.Add((int)e);
        }

        edges.Add(max);
        return [.. edges];
    }

    /// <summary>Linear prefill and decode buckets with the same step.</summary>
    public static BucketSet LinearSteps(int min, int step, int maxContext, int seqLen, DecodeConvention convention = DecodeConvention.AfterAppend) =>
        new(Linear(min, step, maxContext), Linear(min, step, seqLen), convention);

    /// <summary>Builds a named preset: <c>nxdi</c>, <c>neuronx</c> (uses <paramref name="seqLen"/> as n_positions) or <c>linear</c>.</summary>
    public static BucketSet Create(string name, int maxContext, int seqLen, int linearMin = 128, int linearStep = 128,
        DecodeConvention convention = DecodeConvention.AfterAppend) =>
        name.ToLowerInvariant() switch
        {
            "nxdi" => NxdInference(maxContext, seqLen, convention),
            "neuronx" => TransformersNeuronx(seqLen, convention),
            "linear" => LinearSteps(linearMin, linearStep, maxContext, seqLen, convention),
            _ => throw new BucketSetException($"unknown preset '{name}'; known presets: {string.Join(", ", Names)}"),
        };

    /// <summary>Names accepted by <see cref="BatchBuckets"/>.</summary>
    public static readonly IReadOnlyList<string> BatchRules = ["pow2", "exp", "lin"];

    /// <summary>
    /// Batch buckets by a serving stack's rule, up to <paramref name="maxNumSeqs"/> (always included):
    /// <list type="bullet">
    /// <item><c>pow2</c>: vLLM on Neuron's <c>num_seqs_buckets</c>, powers of two from 1 (1, 2, 4, ..., then max_num_seqs).</item>
    /// <item><c>exp</c>: vLLM on Gaudi's exponential decode batch buckets, powers of two from <paramref name="min"/> up to the max.</item>
    /// <item><c>lin</c>: vLLM on Gaudi's linear strategy (<c>min, step, max</c>): powers of two from <paramref name="min"/> below
    /// <paramref name="step"/>, then multiples of <paramref name="step"/> up to the max.</item>
    /// </list>
    /// NxD Inference's <c>token_generation_batches</c>, RBLN's <c>decoder_batch_sizes</c> and Furiosa's decode buckets are explicit
    /// lists: give them as such.
    /// </summary>
    public static int[] BatchBuckets(string rule, int maxNumSeqs, int min = 1, int step = 32)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if (maxNumSeqs is < 1 or > LensCsv.MaxBatch)
        {
            throw new BucketSetException($"max_num_seqs must be in 1..{LensCsv.MaxBatch}; got {maxNumSeqs}");
        }

        if (min < 1 || min > maxNumSeqs || step < 1)
        {
            throw new BucketSetException($"batch buckets need 1 <= min <= max_num_seqs and step >= 1; got min={min}, step={step}, max={maxNumSeqs}");
        }

        var edges = new SortedSet<int>();
        switch (rule.ToLowerInvariant())
        {
            case "pow2":
                min = 1;
                goto case "exp";
            case "exp":
                for (long b = min; b < maxNumSeqs; b *= 2)
                {
                    edges.Add((int)b);
                }

                break;
            case "lin":
                for (long b = min; b < Math.Min(step, maxNumSeqs); b *= 2)
                {
                    edges.Add((int)b);
                }

                for (long b = step; b < maxNumSeqs; b += step)
                {
                    edges.Add((int)b);
                }

                break;
            default:
                throw new BucketSetException($"unknown batch rule '{rule}'; known rules: {string.Join(", ", BatchRules)} (or give an explicit list)");
        }

        edges.Add(maxNumSeqs);
        return [.. edges];
    }

    private static int[] PowersOfTwoThenMax(int max, string what)
    {
        if (max <= 0)
        {
            throw new BucketSetException($"{what} must be positive; got {max}");
        }

        var edges = new List<int>();
        for (long e = 128; e < max; e *= 2)
        {
            edges.Add((int)e);
        }

        edges.Add(max);
        return [.. edges];
    }
}
