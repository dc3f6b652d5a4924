namespace Lens.Core;

/// <summary>A prediction for one request (ms). <see cref="TpotMs"/> is NaN when <c>O = 1</c> (no decode step).</summary>
/// <param name="E2eMs">End-to-end latency.</param>
/// <param name="TtftMs">Time to first token.</param>
/// <param name="TpotMs">Mean time per output token after the first: <c>(E2E - TTFT) / (O - 1)</c>.</param>
/// <param name="E2eLowMs">Lower end of the prediction interval of one request's E2E, at the model's
/// <see cref="IntervalCalibration.Level"/> (never below zero nor below the fastest time the profile's repeats allow).</param>
/// <param name="E2eHighMs">Upper end of that interval.</param>
/// <param name="TtftLowMs">Lower end of the interval of TTFT at the same level (NaN when not computed).</param>
/// <param name="TtftHighMs">Upper end of the interval of TTFT.</param>
public readonly record struct Prediction(double E2eMs, double TtftMs, double TpotMs, double E2eLowMs, double E2eHighMs,
    double TtftLowMs = double.NaN, double TtftHighMs = double.NaN);

/// <summary>One bucket's share of a prediction: its steps (1 for the prefill) and their cost.</summary>
public readonly record struct BucketShare(BucketId Bucket, int Steps, double Ms);

/// <summary>The fitted values of one prefill bucket.</summary>
/// <param name="AMs">Prefill cost <c>A[p]</c> (request overhead included); NaN when no data.</param>
/// <param name="PlateauSpread">(max - min) / mean of the A estimates at different prompt lengths in the bucket; NaN with fewer than two.</param>
public readonly record struct PrefillValues(int Edge, double AMs, double AStandardError, double TtftMs, double TtftStandardError, double PlateauSpread)
{
    public bool IsFitted => !double.IsNaN(AMs);
}

/// <summary>The fitted values of one decode bucket: step cost <c>S[B, d]</c> at batch bucket <paramref name="Batch"/> (NaN when no data).</summary>
public readonly record struct DecodeValues(int Edge, double StepMs, double StepStandardError, int Batch = 1)
{
    public bool IsFitted => !double.IsNaN(StepMs);
}

/// <summary>
/// An immutable fitted deployment: the bucket sets and every bucket's values. Predicts (method.md, "The model")
/// <code>
/// TTFT(I)   = A[pre(I)]   (or the measured TTFT of pre(I), when the backend streamed)
/// E2E(I, O) = A[pre(I)] + sum over k = 1..O-1 of S[dec(I + k)]
/// TPOT      = (E2E - TTFT) / (O - 1)
/// </code>
/// The decode sum is computed from prefix sums over buckets with two binary searches: O(log n) per request, never a loop over O.
/// A single request runs its decode steps at the smallest batch bucket; with batch buckets, every decode bucket has one step cost
/// per batch bucket, <c>S[B, d]</c>, which <see cref="StepMs(int, int)"/> gives to the serving simulation (method.md, "Batched serving").
/// </summary>
public sealed partial class DeploymentModel
{
    private readonly int[] _decodeEdges;
    private readonly double[] _a, _aVar, _ttft, _ttftSe, _step, _stepVar;
    private readonly double[] _cumCost, _cumVar; // sums over full buckets 0..j of width * S and width^2 * Var(S)
    private readonly int[] _cumMissing;          // unfitted decode buckets among 0..j

    /// <param name="calibration">How intervals are made; null: <see cref="IntervalCalibration.Fallback"/> from
    /// <paramref name="relativeNoise"/> (a model file from before calibration).</param>
    public DeploymentModel(BucketSet buckets, IReadOnlyList<PrefillValues> prefill, IReadOnlyList<DecodeValues> decode, RepeatStatistic statistic,
        double relativeNoise, IntervalCalibration? calibration = null)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(prefill);
        ArgumentNullException.ThrowIfNull(decode);
        if (!prefill.Select(p => p.Edge).SequenceEqual(buckets.Prefill) ||
            !decode.Select(d => (d.Batch, d.Edge)).SequenceEqual(buckets.Batch.SelectMany(b => buckets.Decode.Select(e => (b, e)))))
        {
            throw new ArgumentException("the fitted buckets do not match the bucket set (decode values go batch bucket by batch bucket, edges ascending)");
        }

        if (!(relativeNoise >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(relativeNoise), relativeNoise, "relative noise must be zero or positive");
        }

        calibration ??= IntervalCalibration.Fallback(relativeNoise, statistic);
        calibration.Validate();
        Buckets = buckets;
        Calibration = calibration;
        PrefillBuckets = [.. prefill];
        DecodeBuckets = [.. decode];
        Statistic = statistic;
        RelativeNoise = relativeNoise;
        _decodeEdges = [.. buckets.Decode];
        _a = [.. prefill.Select(p => p.AMs)];
        _aVar = [.. prefill.Select(p => p.AStandardError * p.AStandardError)];
        // The first token cannot come after a prefill-only request ends: a measured TTFT above A (noise) is held to A.
        _ttft = [.. prefill.Select(p => double.IsNaN(p.TtftMs) ? p.AMs : Math.Min(p.TtftMs, p.AMs))];
        _ttftSe = [.. prefill.Select(p => double.IsNaN(p.TtftMs) ? p.AStandardError : p.TtftStandardError)];
        _step = [.. decode.Select(d => d.StepMs)];
        _stepVar = [.. decode.Select(d => d.StepStandardError * d.StepStandardError)];
        _cumCost = new double[_step.Length];
        _cumVar = new double[_step.Length];
        _cumMissing = new int[_step.Length];
        double cost = 0, variance = 0;
        var missing = 0;
        for (var k = 0; k < _step.Length; k++)
        {
            // Prefix sums restart at each batch bucket's block; single requests use the first block (the smallest batch bucket).
            var j = k % _decodeEdges.Length;
            if (j == 0)
            {
                (cost, variance, missing) = (0, 0, 0);
            }

            double width = _decodeEdges[j] - buckets.DecodeLowerEdge(j);
            if (double.IsNaN(_step[k]))
            {
                missing++;
            }
            else
            {
                cost += width * _step[k];
                variance += width * width * _stepVar[k];
            }

            _cumCost[k] = cost;
            _cumVar[k] = variance;
            _cumMissing[k] = missing;
        }
    }

    public BucketSet Buckets { get; }

    /// <summary>Chips per replica, device kind and price (method.md, "Parallel layouts and cost"); one chip and no price by default.</summary>
    public DeploymentLayout Layout { get; private init; } = DeploymentLayout.Default;

    /// <summary>The same fitted model with another layout (the fit does not depend on it).</summary>
    public DeploymentModel WithLayout(DeploymentLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (layout.Check() is { } problem)
        {
            throw new ArgumentException($"invalid layout: {problem}", nameof(layout));
        }

        return new DeploymentModel(Buckets, PrefillBuckets, DecodeBuckets, Statistic, RelativeNoise, Calibration) { Layout = layout, Policy = Policy, Provenance = Provenance };
    }

    /// <summary>The scheduler and execution type the costs belong to (method.md, "Scheduling policies"); prefill-first padded by
    /// default. The policy names the axes of the step table (<see cref="SchedulingPolicy"/>).</summary>
    public SchedulingPolicy Policy { get; private init; } = SchedulingPolicy.Default;

    /// <summary>The same fitted values under <paramref name="policy"/> (validated).</summary>
    public DeploymentModel WithPolicy(SchedulingPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.Check() is { } problem)
        {
            throw new ArgumentException($"invalid scheduling policy: {problem}", nameof(policy));
        }

        return new DeploymentModel(Buckets, PrefillBuckets, DecodeBuckets, Statistic, RelativeNoise, Calibration) { Layout = Layout, Policy = policy, Provenance = Provenance };
    }

    /// <summary>
    /// The cells whose cost was estimated from live traffic, with how (<see cref="ModelProvenance"/>); every other cell is profiled.
    /// </summary>
    public IReadOnlyDictionary<BucketId, TrafficEstimate> Provenance { get; internal init; } = new Dictionary<BucketId, TrafficEstimate>();

    public IReadOnlyList<PrefillValues> PrefillBuckets { get; }

    /// <summary>Decode values batch bucket by batch bucket (in <see cref="BucketSet.Batch"/> order), each ascending by edge.</summary>
    public IReadOnlyList<DecodeValues> DecodeBuckets { get; }

    /// <summary>Prefill cost <c>A[p]</c> of prefill bucket <paramref name="prefillIndex"/> (NaN when unfitted).</summary>
    public double PrefillMs(int prefillIndex) => _a[prefillIndex];

    /// <summary>Time to first token of a request whose prefill runs in bucket <paramref name="prefillIndex"/> (at most its A).</summary>
    public double TtftMs(int prefillIndex) => _ttft[prefillIndex];

    /// <summary>Step cost <c>S[B, d]</c> at batch bucket index <paramref name="batchIndex"/>, decode bucket index <paramref name="decodeIndex"/>.</summary>
    public double StepMs(int batchIndex, int decodeIndex) => _step[(batchIndex * _decodeEdges.Length) + decodeIndex];

    /// <summary>The statistic the profile reduced repeats with; evaluate with the same one.</summary>
    public RepeatStatistic Statistic { get; }

    /// <summary>Pooled relative standard deviation of one request around its point (repeat noise), used in prediction intervals.</summary>
    public double RelativeNoise { get; }

    /// <summary>How the prediction intervals are made, and their level.</summary>
    public IntervalCalibration Calibration { get; }

    /// <summary>Whether every bucket has a fit.</summary>
    public bool IsComplete => !Unfitted.Any();

    /// <summary>The buckets without a fit (a prefill bucket no servable request reaches, <c>p(i-1) + 1 &gt;= dn</c>, needs none).</summary>
    public IEnumerable<BucketId> Unfitted =>
        PrefillBuckets.Where((p, i) => !p.IsFitted && UsesPrefill(i)).Select(p => new BucketId(BucketKind.Prefill, p.Edge))
            .Concat(DecodeBuckets.Where(d => !d.IsFitted).Select(d => new BucketId(BucketKind.Decode, d.Edge, d.Batch)));

    /// <summary>
    /// Combines per-bucket fits into a model: <c>S[d]</c> from each decode bucket's own fit; <c>A[p]</c> (and TTFT) from every
    /// estimate at a prompt length in <c>p</c>, weighted by inverse variance where all have one. Intervals at
    /// <paramref name="intervalLevel"/> are calibrated on every bucket's repeats (<see cref="IntervalCalibration.Of"/>).
    /// </summary>
    public static DeploymentModel Compose(BucketSet buckets, IEnumerable<BucketFit> fits, RepeatStatistic statistic,
        double intervalLevel = IntervalCalibration.DefaultLevel)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        var list = fits.ToArray();
        var byBucket = new Dictionary<BucketId, BucketFit>();
        foreach (var f in list)
        {
            byBucket.TryAdd(f.Bucket, f);
        }

        var decode = buckets.Batch.SelectMany(batch => buckets.Decode.Select(edge =>
            byBucket.GetValueOrDefault(new BucketId(BucketKind.Decode, edge, batch)) is { StepMs: { } s } fit
                ? new DecodeValues(edge, s, fit.StepStandardError, batch)
                : new DecodeValues(edge, double.NaN, 0, batch))).ToArray();

        var aByBucket = GroupByPrefill(buckets, list.SelectMany(f => f.PrefillEstimates));
        var ttftByBucket = GroupByPrefill(buckets, list.SelectMany(f => f.TtftEstimates));
        var prefill = new PrefillValues[buckets.Prefill.Length];
        for (var i = 0; i < prefill.Length; i++)
        {
            var (a, aSe) = Combine(aByBucket[i]);
            var (t, tSe) = Combine(ttftByBucket[i]);
            prefill[i] = new PrefillValues(buckets.Prefill[i], a, aSe, t, tSe, PlateauSpread(aByBucket[i]));
        }

        var counted = list.Where(f => f.Measurements > 0).ToArray();
        var noise = counted.Length == 0 ? 0 : counted.Sum(f => f.RelativeNoise * f.Measurements) / counted.Sum(f => f.Measurements);
        return new DeploymentModel(buckets, prefill, decode, statistic, noise,
            IntervalCalibration.Of(list.Select(f => f.Excess), noise, statistic, intervalLevel));
    }

    /// <summary>Predicts one request. Throws <see cref="RequestOutOfRangeException"/> outside the buckets and
    /// <see cref="UnfittedBucketException"/> when a bucket it needs has no fit.</summary>
    public Prediction Predict(int inputLength, int outputLength)
    {
        EnsureRequest(inputLength, outputLength);
        return PredictValidated(inputLength, outputLength);
    }

    /// <summary>
    /// Predicts many requests into caller-owned spans, allocating nothing per item. Lengths are validated first; an invalid one throws
    /// <see cref="RequestOutOfRangeException"/> naming its index, and nothing is written.
    /// </summary>
    public void PredictMany(ReadOnlySpan<int> inputLengths, ReadOnlySpan<int> outputLengths, Span<Prediction> results)
    {
        if (inputLengths.Length != outputLengths.Length || results.Length < inputLengths.Length)
        {
            throw new ArgumentException(
                $"batch spans disagree: {inputLengths.Length} input lengths, {outputLengths.Length} output lengths, room for {results.Length} results");
        }

        for (var n = 0; n < inputLengths.Length; n++)
        {
            if (CheckRequest(inputLengths[n], outputLengths[n]) is { } reason)
            {
                throw new RequestOutOfRangeException($"request #{n}: {reason}");
            }
        }

        for (var n = 0; n < inputLengths.Length; n++)
        {
            results[n] = PredictValidated(inputLengths[n], outputLengths[n]);
        }
    }

    /// <summary>The per-bucket breakdown of a prediction: the prefill bucket, then each decode bucket touched with its steps.</summary>
    public IReadOnlyList<BucketShare> Breakdown(int inputLength, int outputLength)
    {
        EnsureRequest(inputLength, outputLength);
        if (!Policy.IsDefault)
        {
            return BreakdownByScheduler(inputLength, outputLength);
        }

        var i = Buckets.PrefillIndex(inputLength);
        var shares = new List<BucketShare> { new(new BucketId(BucketKind.Prefill, Buckets.Prefill[i]), 1, _a[i]) };
        if (outputLength > 1)
        {
            int from = Buckets.StepLength(inputLength, 1), to = Buckets.StepLength(inputLength, outputLength - 1);
            for (var j = Buckets.DecodeIndex(from); j < _decodeEdges.Length && Buckets.DecodeLowerEdge(j) < to; j++)
            {
                var steps = Math.Min(to, _decodeEdges[j]) - Math.Max(from, Buckets.DecodeLowerEdge(j) + 1) + 1;
                shares.Add(new BucketShare(new BucketId(BucketKind.Decode, _decodeEdges[j], Buckets.Batch[0]), steps, steps * _step[j]));
            }
        }

        return shares;
    }

    private Prediction PredictValidated(int inputLength, int outputLength)
    {
        if (!Policy.IsDefault)
        {
            return PredictByScheduler(inputLength, outputLength);
        }

        var i = Buckets.PrefillIndex(inputLength);
        var a = _a[i];
        if (double.IsNaN(a))
        {
            throw new UnfittedBucketException(new BucketId(BucketKind.Prefill, Buckets.Prefill[i]));
        }

        var ttft = _ttft[i];
        if (outputLength == 1)
        {
            return WithInterval(a, ttft, double.NaN, _aVar[i], i);
        }

        var decode = DecodeSum(Buckets.StepLength(inputLength, 1), Buckets.StepLength(inputLength, outputLength - 1), out var decodeVar);
        var e2e = a + decode;
        return WithInterval(e2e, ttft, (e2e - ttft) / (outputLength - 1), _aVar[i] + decodeVar, i);
    }

    private Prediction WithInterval(double e2e, double ttft, double tpot, double fitVariance, int prefillIndex) =>
        WithInterval(e2e, ttft, tpot, fitVariance, _ttftSe[prefillIndex]);

    private Prediction WithInterval(double e2e, double ttft, double tpot, double fitVariance, double ttftStandardError)
    {
        var z = Calibration.Z;
        var (low, high) = Calibration.E2e.Interval(e2e, Math.Sqrt(fitVariance), z);
        var (ttftLow, ttftHigh) = Calibration.Ttft.Interval(ttft, ttftStandardError, z);
        return new Prediction(e2e, ttft, tpot, low, high, ttftLow, ttftHigh);
    }

    /// <summary>Sum of <c>S[dec(len)]</c> for <c>len = from..to</c>, and its variance, from prefix sums.</summary>
    private double DecodeSum(int from, int to, out double variance)
    {
        int ja = Buckets.DecodeIndex(from), jb = Buckets.DecodeIndex(to);
        if (_cumMissing[jb] - (ja == 0 ? 0 : _cumMissing[ja - 1]) > 0)
        {
            var j = ja;
            while (!double.IsNaN(_step[j]))
            {
                j++;
            }

            throw new UnfittedBucketException(new BucketId(BucketKind.Decode, _decodeEdges[j], Buckets.Batch[0]));
        }

        if (ja == jb)
        {
            double n = to - from + 1;
            variance = n * n * _stepVar[ja];
            return n * _step[ja];
        }

        double first = _decodeEdges[ja] - from + 1, last = to - _decodeEdges[jb - 1];
        variance = (first * first * _stepVar[ja]) + (last * last * _stepVar[jb]) + _cumVar[jb - 1] - _cumVar[ja];
        return (first * _step[ja]) + (last * _step[jb]) + _cumCost[jb - 1] - _cumCost[ja];
    }

    private static List<LengthEstimate>[] GroupByPrefill(BucketSet buckets, IEnumerable<LengthEstimate> estimates)
    {
        var groups = buckets.Prefill.Select(_ => new List<LengthEstimate>()).ToArray();
        foreach (var e in estimates)
        {
            var i = buckets.PrefillIndex(e.InputLength);
            if (i >= 0)
            {
                groups[i].Add(e);
            }
        }

        return groups;
    }

    internal static (double Value, double StandardError) Combine(List<LengthEstimate> estimates)
    {
        if (estimates.Count == 0)
        {
            return (double.NaN, 0);
        }

        if (estimates.Count == 1)
        {
            return (estimates[0].ValueMs, estimates[0].StandardError);
        }

        if (estimates.All(e => e.StandardError > 0))
        {
            var weights = estimates.Select(e => 1 / (e.StandardError * e.StandardError)).ToArray();
            var total = weights.Sum();
            return (estimates.Select((e, k) => e.ValueMs * weights[k]).Sum() / total, Math.Sqrt(1 / total));
        }

        var mean = estimates.Average(e => e.ValueMs);
        var sd = Math.Sqrt(estimates.Sum(e => (e.ValueMs - mean) * (e.ValueMs - mean)) / (estimates.Count - 1));
        return (mean, sd / Math.Sqrt(estimates.Count));
    }

    internal static double PlateauSpread(List<LengthEstimate> estimates)
    {
        var byLength = estimates.GroupBy(e => e.InputLength).Select(g => g.Average(e => e.ValueMs)).ToArray();
        return byLength.Length < 2 ? double.NaN : (byLength.Max() - byLength.Min()) / byLength.Average();
    }
}

/// <summary>A prediction needs a bucket that has no fit yet (not profiled, or its data were insufficient).</summary>
public sealed class UnfittedBucketException(BucketId bucket)
    : InvalidOperationException($"bucket {bucket} has no fit yet; profile it before predicting requests that touch it")
{
    public BucketId Bucket { get; } = bucket;
}
