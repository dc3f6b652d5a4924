namespace Lens.Core;

/// <summary>What a row of an evaluation run measures.</summary>
public enum EvaluationRole
{
    /// <summary>A profiling request: the model is fitted on these alone.</summary>
    Profile,

    /// <summary>A held-out request: the model is scored on these.</summary>
    HeldOut,

    /// <summary>A second, independent measurement of a held-out request: the noise floor compares it with the first.</summary>
    HeldOutTwin,

    /// <summary>A request of the input-length sweep drawn in the plot.</summary>
    Sweep,
}

/// <summary>One request of an evaluation run.</summary>
public readonly record struct EvaluationRow(EvaluationRole Role, BucketId? Bucket, int InputLength, int OutputLength, int Repeat);

/// <summary>Options of <see cref="EvaluationPlan"/>.</summary>
/// <param name="HeldOut">Held-out request pairs; half drawn near bucket edges, where the steps are.</param>
/// <param name="Repeats">Repeats of every point (profiling, held-out, twin, sweep), reduced by the profile's statistic.</param>
/// <param name="MaxOutput">Cap on held-out output lengths, to bound device time (null: up to the longest sequence).</param>
/// <param name="SweepPoints">Input lengths of the plot's sweep (0: none).</param>
/// <param name="SweepOutput">Output length of the sweep's requests.</param>
public sealed record EvaluationOptions(int HeldOut = 100, int Repeats = 3, int? MaxOutput = null, int SweepPoints = 0, int SweepOutput = 16,
    int Seed = 0, int? MaxSpan = null);

/// <summary>
/// An evaluation run per method.md ("Profiling", last paragraph): the profiling plan, held-out pairs and their twins all timed
/// interleaved in one run, so that device drift over the run spreads over profile and held-out alike instead of being scored as
/// estimator error. The twin measurements give the noise floor: the error between two measurements of the same requests.
/// </summary>
public sealed class EvaluationPlan
{
    private EvaluationPlan(ProfilingPlan profile, IReadOnlyList<RequestPair> heldOut, IReadOnlyList<int> sweep, IReadOnlyList<EvaluationRow> rows)
    {
        Profile = profile;
        HeldOutPairs = heldOut;
        SweepInputs = sweep;
        Rows = rows;
    }

    public ProfilingPlan Profile { get; }

    public IReadOnlyList<RequestPair> HeldOutPairs { get; }

    public IReadOnlyList<int> SweepInputs { get; }

    /// <summary>Every request in run order: rounds of repeats, each round shuffled by the seed.</summary>
    public IReadOnlyList<EvaluationRow> Rows { get; }

    public long DecodeSteps => Rows.Sum(r => (long)r.OutputLength - 1);

    public static EvaluationPlan Create(BucketSet buckets, EvaluationOptions options)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(options);
        if (options.HeldOut < 0 || options.SweepPoints < 0 || options.SweepOutput < 1)
        {
            throw new PlanException("held-out and sweep counts must be zero or more, and the sweep output length at least 1");
        }

        var profile = ProfilingPlanner.Create(buckets, new PlanOptions(1, options.MaxSpan, options.Seed));
        var rng = new Random(options.Seed);
        var heldOut = HeldOut(buckets, options.HeldOut, options.MaxOutput, rng);
        var sweep = Sweep(buckets, options.SweepPoints, options.SweepOutput);
        var points = new List<EvaluationRow>();
        points.AddRange(profile.Rows.Select(r => new EvaluationRow(EvaluationRole.Profile, r.Bucket, r.InputLength, r.OutputLength, 0)));
        points.AddRange(heldOut.Select(p => new EvaluationRow(EvaluationRole.HeldOut, null, p.InputLength, p.OutputLength, 0)));
        points.AddRange(heldOut.Select(p => new EvaluationRow(EvaluationRole.HeldOutTwin, null, p.InputLength, p.OutputLength, 0)));
        points.AddRange(sweep.Select(i => new EvaluationRow(EvaluationRole.Sweep, null, i, options.SweepOutput, 0)));
        var rows = new List<EvaluationRow>(points.Count * options.Repeats);
        for (var repeat = 0; repeat < options.Repeats; repeat++)
        {
            var round = points.Select(p => p with { Repeat = repeat }).ToArray();
            rng.Shuffle(round);
            rows.AddRange(round);
        }

        return new EvaluationPlan(profile, heldOut, sweep, rows);
    }

    /// <summary>
    /// Random servable pairs: half uniform over the whole range, half with the prompt or the last decode step within a few tokens
    /// of a bucket edge (both sides), where a step function is easiest to get wrong.
    /// </summary>
    public static IReadOnlyList<RequestPair> HeldOut(BucketSet buckets, int count, int? maxOutput, Random rng)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(rng);
        var maxInput = Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1);
        int OutputFor(int input) => rng.Next(1, Math.Min(buckets.MaxSequence - input, maxOutput ?? int.MaxValue) + 1);
        var pairs = new HashSet<RequestPair>();
        for (var attempts = 0; pairs.Count < count && attempts < count * 100; attempts++)
        {
            var near = rng.Next(2) == 0;
            int input, output;
            if (!near)
            {
                input = rng.Next(1, maxInput + 1);
                output = OutputFor(input);
            }
            else if (rng.Next(2) == 0)
            {
                var edge = buckets.Prefill[rng.Next(buckets.Prefill.Length)];
                input = Math.Clamp(edge + rng.Next(-2, 4), 1, maxInput);
                output = OutputFor(input);
            }
            else
            {
                // The last step (length I + O - 1) near a decode edge.
                var edge = buckets.Decode[rng.Next(buckets.Decode.Length)];
                var last = edge + rng.Next(-2, 4);
                input = rng.Next(1, Math.Min(maxInput, last - 1) + 1);
                output = last - input + 1;
                if (last < 2 || output < 1 || (maxOutput is { } cap && output > cap))
                {
                    continue;
                }
            }

            if (buckets.CheckRequest(input, output) is null)
            {
                pairs.Add(new RequestPair(input, output));
            }
        }

        return [.. pairs];
    }

    /// <summary>Input lengths for the plot: evenly spread, plus both sides of every prefill edge.</summary>
    public static IReadOnlyList<int> Sweep(BucketSet buckets, int points, int output)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        if (points == 0)
        {
            return [];
        }

        var maxInput = Math.Min(buckets.MaxPrompt, buckets.MaxSequence - output);
        var inputs = new SortedSet<int>();
        for (var n = 0; n < points; n++)
        {
            inputs.Add(1 + (int)((long)(maxInput - 1) * n / Math.Max(1, points - 1)));
        }

        foreach (var edge in buckets.Prefill)
        {
            inputs.Add(edge);
            inputs.Add(edge + 1);
        }

        inputs.RemoveWhere(i => i < 1 || buckets.CheckRequest(i, output) is not null);
        return [.. inputs];
    }
}
