namespace Lens.Engine;

/// <summary>The measured cost of one decode step at (<see cref="Batch"/>, <see cref="DecodeBucket"/>), over <see cref="Steps"/> steps.</summary>
/// <param name="P10Ms">The 10th percentile: interference only ever slows a step, so a low quantile is nearer the undisturbed cost.</param>
public sealed record StepCost(int Batch, int DecodeBucket, int Steps, double MedianMs, double P10Ms);

/// <summary>The measured cost of one prefill in <see cref="Bucket"/> (alone), over <see cref="Runs"/> runs.</summary>
public sealed record PrefillCost(int Bucket, int Runs, double MedianMs, double MinMs);

/// <summary>What an engine's compiled shapes cost on this machine: every (batch, decode) bucket and every prefill bucket.</summary>
public sealed record StepCostTable(string Profile, IReadOnlyList<StepCost> Steps, IReadOnlyList<PrefillCost> Prefills);

/// <summary>
/// Measures a <see cref="ReferenceEngine"/>'s step costs directly (no HTTP): for every batch bucket <c>b</c> and decode bucket
/// <c>d</c>, a group of <c>b</c> identical requests released at once (as the profiler's groups), whose steps inside <c>d</c> are
/// read back from <see cref="ReferenceEngine.StepsSince"/>; steps that moved a cache are left out. Then each prefill bucket alone.
/// For sizing workloads and demos, prefill-first padded engines only; LENS itself measures only end to end.
/// </summary>
public static class StepCosts
{
    public static async Task<StepCostTable> MeasureAsync(ReferenceEngine engine, int stepsPerCell = 100, int prefillRuns = 3,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentOutOfRangeException.ThrowIfLessThan(stepsPerCell, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(prefillRuns, 1);
        if (!engine.Policy.IsDefault)
        {
            throw new InvalidOperationException(
                $"step costs are measured per (batch, decode) bucket of a prefill-first padded engine; '{engine.Profile.Name}' runs " +
                $"the {engine.Policy.Name} policy, whose cells the policy-independent fit measures");
        }

        var buckets = engine.Buckets;
        var decode = buckets.Decode;
        var steps = new List<StepCost>();
        foreach (var batch in engine.BatchBuckets)
        {
            for (var j = 0; j < decode.Length; j++)
            {
                // The bucket's first length, or the longest prompt when the bucket lies beyond it (its steps come later).
                var lower = buckets.DecodeLowerEdge(j);
                var input = Math.Min(lower + 1, buckets.MaxPrompt);
                var output = Math.Min(decode[j] - input, Math.Max(lower - input, 0) + stepsPerCell + 1);
                if (output < 2)
                {
                    continue; // a bucket too narrow for a step after its first length
                }

                var since = engine.Counters.DecodeSteps;
                Task<GenerationResult>[] group;
                using (engine.Pause())
                {
                    group = [.. Enumerable.Range(0, batch).Select(_ => engine.GenerateAsync(input, output, null, cancellationToken))];
                }

                await Task.WhenAll(group);
                var ms = engine.StepsSince(since)
                    .Where(s => s.Batch == batch && s.Bucket.Edge == decode[j] && s.CacheMoves == 0)
                    .Select(s => s.Ms)
                    .Order()
                    .ToArray();
                if (ms.Length > 0)
                {
                    steps.Add(new StepCost(batch, decode[j], ms.Length, Quantile(ms, 0.5), Quantile(ms, 0.1)));
                }
            }
        }

        var prefills = new List<PrefillCost>();
        foreach (var p in buckets.Prefill)
        {
            var ms = new double[prefillRuns];
            for (var r = 0; r < prefillRuns; r++)
            {
                ms[r] = (await engine.GenerateAsync(p, 1, null, cancellationToken)).Prefill.Ms;
            }

            Array.Sort(ms);
            prefills.Add(new PrefillCost(p, prefillRuns, Quantile(ms, 0.5), ms[0]));
        }

        return new StepCostTable(engine.Profile.Name, steps, prefills);
    }

    /// <summary>The q-quantile of sorted values by the nearest rank.</summary>
    private static double Quantile(double[] sorted, double q) =>
        sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
}
