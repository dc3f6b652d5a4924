namespace Lens.Core;

/// <summary>
/// Fits buckets from measurements (method.md, "Profiling": least squares through all of a bucket's points, with standard errors).
/// Repeats of one (I, O) point are first reduced by the profile's <see cref="RepeatStatistic"/>.
/// </summary>
public static class BucketFitter
{
    /// <summary>Fits every bucket of <paramref name="buckets"/> from <paramref name="measurements"/> and composes the model.</summary>
    public static DeploymentModel Fit(BucketSet buckets, IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic)
    {
        var fits = FitAll(buckets, measurements, statistic);
        return DeploymentModel.Compose(buckets, fits, statistic);
    }

    /// <summary>Assigns each measurement to a bucket (see <see cref="MeasurementTagger"/>) and fits each bucket alone.</summary>
    public static IReadOnlyList<BucketFit> FitAll(BucketSet buckets, IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic)
    {
        var tagged = MeasurementTagger.Tag(buckets, measurements);
        return [.. buckets.AllBuckets().Select(b => FitBucket(buckets, b, tagged.TryGetValue(b, out var ms) ? ms : [], statistic))];
    }

    /// <summary>Fits one bucket from its own measurements.</summary>
    public static BucketFit FitBucket(BucketSet buckets, BucketId bucket, IReadOnlyCollection<MeasuredRequest> measurements, RepeatStatistic statistic)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        if (!buckets.Contains(bucket))
        {
            throw new ArgumentException($"bucket {bucket} is not in the bucket set {buckets}", nameof(bucket));
        }

        // A group of b identical requests released at once is one observation of the device: it ends when its last request ends, and
        // its first token is its first prefill's (method.md, "Batched serving").
        var count = measurements.Count;
        measurements = CollapseGroups(measurements);

        // A[p] and TTFT come from the smallest batch bucket only (a batch-1 deployment's only one): larger groups run b prefills
        // back to back, so their intercept is b * A, which measures the same A less directly.
        var prefillSource = bucket.Kind == BucketKind.Prefill || bucket.Batch == buckets.Batch[0];
        var points = ReducePoints(measurements, statistic, out var relNoise);
        IReadOnlyList<LengthEstimate> ttft = prefillSource ? TtftEstimates(measurements, statistic) : [];
        if (points.Count == 0)
        {
            return new BucketFit(bucket, null, 0, [], ttft, 0, 0, 0, "no measurements");
        }

        var fit = bucket.Kind == BucketKind.Prefill
            ? FitPrefill(bucket, points, ttft, count, relNoise)
            : FitDecode(buckets, bucket, points, ttft, count, relNoise, prefillSource);
        return fit with { Excess = RepeatExcess.Of(measurements, statistic) };
    }

    /// <summary>Replaces the rows of each group (same <see cref="MeasuredRequest.Group"/>) by one: its latest end and earliest first token.</summary>
    private static IReadOnlyCollection<MeasuredRequest> CollapseGroups(IReadOnlyCollection<MeasuredRequest> measurements)
    {
        if (!measurements.Any(m => m.Group is not null))
        {
            return measurements;
        }

        var result = new List<MeasuredRequest>();
        var byGroup = new Dictionary<long, int>();
        foreach (var m in measurements)
        {
            if (m.Group is not { } g)
            {
                result.Add(m);
            }
            else if (byGroup.TryGetValue(g, out var at))
            {
                var first = result[at];
                double? ttft = first.TtftMs is { } a && m.TtftMs is { } b ? Math.Min(a, b) : first.TtftMs ?? m.TtftMs;
                result[at] = first with { E2eMs = Math.Max(first.E2eMs, m.E2eMs), TtftMs = ttft };
            }
            else
            {
                byGroup[g] = result.Count;
                result.Add(m);
            }
        }

        return result;
    }

    private static BucketFit FitPrefill(BucketId bucket, List<Point> points, IReadOnlyList<LengthEstimate> ttft, int count, double relNoise)
    {
        // A prefill bucket's own requests have O = 1: each is a direct estimate of A at its prompt length (a group of b runs b prefills).
        var estimates = points.Where(p => p.Output == 1)
            .Select(p => new LengthEstimate(p.Input, p.Value / p.Batch, p.StandardError / p.Batch)).ToArray();
        var warning = estimates.Length == 0 ? "no prefill-only (O = 1) measurement" : null;
        return new BucketFit(bucket, null, 0, estimates, ttft, count, points.Count, relNoise, warning);
    }

    private static BucketFit FitDecode(BucketSet buckets, BucketId bucket, List<Point> points, IReadOnlyList<LengthEstimate> ttft, int count,
        double relNoise, bool prefillSource)
    {
        // E2E = c_g + (O - 1) * S, one intercept per prompt length g, one shared slope: the extra steps between two requests of the
        // same prompt are steps of this bucket alone, whatever the intercepts absorb.
        var groups = points.GroupBy(p => p.Input).Where(g => g.Select(p => p.Output).Distinct().Count() >= 2)
            .OrderBy(g => g.Key).ToArray();
        if (groups.Length == 0)
        {
            return new BucketFit(bucket, null, 0, [], ttft, count, points.Count, relNoise,
                "needs two requests with the same prompt length and different output lengths");
        }

        // Closed form, linear in the rows: a design matrix with one column per prompt length would be rows x groups.
        var rows = groups.Sum(g => g.Count());
        var group = new int[rows];
        var x = new double[rows];
        var y = new double[rows];
        var w = new double[rows];
        var r = 0;
        for (var g = 0; g < groups.Length; g++)
        {
            foreach (var p in groups[g])
            {
                group[r] = g;
                x[r] = p.Output - 1;
                y[r] = p.Value;
                w[r] = p.Variance;
                r++;
            }
        }

        // A step costs at least nothing: on a bucket whose span is small against the noise the free slope can come out below zero, and
        // a negative step would make longer outputs faster (and E2E fall below TTFT); it is held at 0, with a warning.
        var slopeIndex = groups.Length;
        var line = SharedSlopeLeastSquares.Solve(group, x, y, w, groups.Length);
        var held = line.Coefficients[slopeIndex] < 0;
        if (held)
        {
            line = SharedSlopeLeastSquares.Solve(group, x, y, w, groups.Length, minSlope: 0);
        }
        var lower = buckets.DecodeLowerEdge(buckets.DecodeIndex(bucket.Edge));
        var estimates = new List<LengthEstimate>();
        for (var g = 0; g < groups.Length && prefillSource; g++)
        {
            // The intercept is A[pre(I)] only when the first decode step already lies in this bucket.
            var input = groups[g].Key;
            if (buckets.StepLength(input, 1) > lower && buckets.PrefillIndex(input) >= 0)
            {
                estimates.Add(new LengthEstimate(input, line.Coefficients[g] / bucket.Batch, line.StandardErrors[g] / bucket.Batch));
            }
        }

        return new BucketFit(bucket, line.Coefficients[slopeIndex], line.StandardErrors[slopeIndex], estimates, ttft, count, points.Count,
            relNoise, held ? "the step cost came out below zero (noise larger than the bucket's span): held at 0; measure more repeats" : null);
    }

    /// <summary>One (I, O) point: the statistic of its repeats, and the variance of that estimate (0 when unknown).</summary>
    private readonly record struct Point(int Input, int Output, double Value, double Variance, int Repeats, int Batch)
    {
        public double StandardError => Math.Sqrt(Variance);
    }

    private static List<Point> ReducePoints(IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic, out double relativeNoise)
    {
        var points = new List<Point>();
        double relVarSum = 0;
        var relDof = 0;
        foreach (var g in measurements.GroupBy(m => (m.InputLength, m.OutputLength, m.Batch)).OrderBy(g => g.Key))
        {
            var values = g.Select(m => m.E2eMs).ToArray();
            var value = statistic.Reduce(values);
            var variance = 0.0;
            if (values.Length > 1)
            {
                var (mean, sampleVar) = MeanAndSampleVariance(values);

                // Variance of the point's estimate: the sample variance over the repeats (sd / sqrt(r) for the mean;
                // used for every statistic as a consistent, slightly conservative proxy).
                variance = sampleVar / values.Length;
                relVarSum += sampleVar / (mean * mean) * (values.Length - 1);
                relDof += values.Length - 1;
            }

            points.Add(new Point(g.Key.InputLength, g.Key.OutputLength, value, variance, values.Length, g.Key.Batch));
        }

        relativeNoise = relDof > 0 ? Math.Sqrt(relVarSum / relDof) : 0;

        // Points without repeats borrow the pooled relative noise, so weights stay comparable within the bucket.
        for (var i = 0; i < points.Count; i++)
        {
            if (points[i].Variance == 0 && relativeNoise > 0)
            {
                var sd = relativeNoise * points[i].Value;
                points[i] = points[i] with { Variance = sd * sd };
            }
        }

        return points;
    }

    private static LengthEstimate[] TtftEstimates(IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic) =>
        [.. measurements.Where(m => m.TtftMs is not null).GroupBy(m => m.InputLength).OrderBy(g => g.Key).Select(g =>
        {
            var values = g.Select(m => m.TtftMs!.Value).ToArray();
            var sd = values.Length > 1 ? Math.Sqrt(MeanAndSampleVariance(values).SampleVariance) : 0;
            return new LengthEstimate(g.Key, statistic.Reduce(values), sd / Math.Sqrt(values.Length));
        })];

    /// <summary>Mean and sample variance (n - 1) in two passes: the mean once, not once per value.</summary>
    private static (double Mean, double SampleVariance) MeanAndSampleVariance(ReadOnlySpan<double> values)
    {
        var sum = 0.0;
        foreach (var v in values)
        {
            sum += v;
        }

        var mean = sum / values.Length;
        var squares = 0.0;
        foreach (var v in values)
        {
            squares += (v - mean) * (v - mean);
        }

        return (mean, squares / (values.Length - 1));
    }
}
