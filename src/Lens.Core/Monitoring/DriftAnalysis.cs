using MathNet.Numerics.LinearAlgebra;

namespace Lens.Core;

/// <summary>A latency observed in production (ms): what a real request of <c>I</c> and <c>O</c> tokens took.</summary>
public readonly record struct Observation(int InputLength, int OutputLength, double E2eMs, double? TtftMs = null);

/// <summary>Thresholds of <see cref="DriftAnalysis"/>.</summary>
/// <param name="MinObservations">Observations that must touch a bucket before it can be judged.</param>
/// <param name="Z">How many standard errors the shift must clear (guards against chance in small windows).</param>
/// <param name="MinRelativeShift">Smallest relative change that counts as drift, whatever the noise (default 5%).</param>
public sealed record DriftOptions(int MinObservations = 20, double Z = 4, double MinRelativeShift = 0.05);

/// <summary>
/// How one bucket fares against observed latencies.
/// </summary>
/// <param name="Observations">Observations in the window that touched the bucket.</param>
/// <param name="MeanApe">Share-weighted mean absolute percentage error of those observations' E2E (percent).</param>
/// <param name="Shift">Estimated relative change of the bucket's cost (0.3 = 30% slower than its fit).</param>
/// <param name="ShiftStandardError">Standard error of <see cref="Shift"/>.</param>
/// <param name="Band">The bucket's noise band: shifts inside it are noise.</param>
/// <param name="Drifting">Whether the shift, beyond the deployment's common shift, left the band in this window (see <see cref="DriftAnalysis"/>).</param>
public sealed record BucketHealth(BucketId Bucket, int Observations, double MeanApe, double Shift, double ShiftStandardError, double Band, bool Drifting);

/// <summary>The buckets' health in one window, and the shift they share.</summary>
/// <param name="CommonShift">Median shift of the judged buckets: what the whole deployment runs slower (or faster) than its profile,
/// e.g. the mean of one-sided noise against a min-statistic profile, or a device-wide slowdown.</param>
public sealed record DriftReport(double CommonShift, IReadOnlyList<BucketHealth> Buckets)
{
    public IEnumerable<BucketHealth> Drifting => Buckets.Where(b => b.Drifting);
}

/// <summary>
/// Attributes the residuals of observed requests to the buckets they touched, and finds buckets that drifted.
/// <para>
/// Each observation <c>n</c> gives <c>(obs - pred) / pred = sum over buckets b of shift_b * share_nb</c>, where
/// <c>share_nb</c> is the predicted fraction of the request's time spent in bucket <c>b</c> (its breakdown); observed TTFT adds
/// <c>(ttft_obs - ttft_pred) / ttft_pred = shift_p</c> for its prefill bucket. The shifts are solved jointly by least squares over
/// the window (with a slight ridge, so buckets always touched together stay defined), so one slow bucket is not blamed on the
/// buckets that share its requests.
/// </para>
/// <para>
/// The rule: bucket <c>b</c> is drifting when at least <see cref="DriftOptions.MinObservations"/> observations touched it and its
/// shift beyond the common shift <c>c</c> (the median over such buckets) clears both its band and its noise:
/// <c>|shift_b - c| &gt; band_b</c> and <c>|shift_b - c| &gt; Z * se(shift_b)</c>, where
/// <c>band_b = max(MinRelativeShift, 3 * relative repeat noise of the profile, Z * relative standard error of the bucket's fit)</c>.
/// Callers require it over consecutive windows before re-profiling (a sustained drift, not one burst). A shift every bucket shares
/// is reported as <see cref="DriftReport.CommonShift"/>, not blamed on any one bucket: re-profiling one bucket cannot repair it.
/// </para>
/// </summary>
public static class DriftAnalysis
{
    private const double Ridge = 1e-3;

    public static DriftReport Analyze(DeploymentModel model, IReadOnlyList<Observation> window, DriftOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(window);
        options ??= new DriftOptions();
        var buckets = model.Buckets.AllBuckets().ToArray();
        var column = buckets.Select((b, i) => (b, i)).ToDictionary(t => t.b, t => t.i);
        var rows = new List<(double[] Share, double Residual)>();
        var touched = new int[buckets.Length];
        var apeSum = new double[buckets.Length];
        var shareSum = new double[buckets.Length];
        foreach (var o in window)
        {
            if (model.CheckRequest(o.InputLength, o.OutputLength) is not null || !(o.E2eMs > 0))
            {
                continue; // not a request this deployment serves; the intake rejects these before they get here
            }

            var p = model.Predict(o.InputLength, o.OutputLength);
            var share = new double[buckets.Length];
            foreach (var s in model.Breakdown(o.InputLength, o.OutputLength))
            {
                share[column[s.Bucket]] += s.Ms / p.E2eMs;
            }

            var residual = (o.E2eMs - p.E2eMs) / p.E2eMs;
            rows.Add((share, residual));
            for (var b = 0; b < share.Length; b++)
            {
                if (share[b] > 0)
                {
                    touched[b]++;
                    apeSum[b] += share[b] * Math.Abs(residual) * 100;
                    shareSum[b] += share[b];
                }
            }

            if (o.TtftMs is { } ttft && ttft > 0 && p.TtftMs > 0)
            {
                var prefill = new double[buckets.Length];
                prefill[column[new BucketId(BucketKind.Prefill, model.Buckets.Prefill[model.Buckets.PrefillIndex(o.InputLength)])]] = 1;
                rows.Add((prefill, (ttft - p.TtftMs) / p.TtftMs));
            }
        }

        var active = Enumerable.Range(0, buckets.Length).Where(b => touched[b] > 0).ToArray();
        var shift = new double[buckets.Length];
        var se = new double[buckets.Length];
        var common = 0.0;
        if (active.Length > 0 && rows.Count > active.Length)
        {
            // Every row's shares sum to 1, so a shift all buckets share moves every residual alike. Solve once for it (the median
            // of the judged buckets), then again around it, so the ridge pulls thinly observed buckets to the common shift, not to 0.
            // A few rounds settle it: each round's median is taken from shifts shrunk toward the previous round's.
            for (var round = 0; round < 4; round++)
            {
                SolveShifts(rows, active, common, shift, se);
                var judged = active.Where(b => touched[b] >= options.MinObservations).Select(b => shift[b]).Order().ToArray();
                common = judged.Length == 0 ? 0 : RepeatStatistic.QuantileOfSorted(judged, 0.5);
            }

            SolveShifts(rows, active, common, shift, se);
        }

        var result = new BucketHealth[buckets.Length];
        for (var b = 0; b < buckets.Length; b++)
        {
            var band = Math.Max(options.MinRelativeShift, Math.Max(3 * model.RelativeNoise, options.Z * RelativeFitError(model, buckets[b])));
            var own = Math.Abs(shift[b] - common);
            var drifting = touched[b] >= options.MinObservations && own > band && own > options.Z * se[b];
            result[b] = new BucketHealth(buckets[b], touched[b], shareSum[b] > 0 ? apeSum[b] / shareSum[b] : double.NaN, shift[b], se[b], band,
                drifting);
        }

        return new DriftReport(common, result);
    }

    private static void SolveShifts(List<(double[] Share, double Residual)> rows, int[] active, double common, double[] shift, double[] se)
    {
        var x = Matrix<double>.Build.Dense(rows.Count + active.Length, active.Length);
        var y = Vector<double>.Build.Dense(rows.Count + active.Length);
        for (var r = 0; r < rows.Count; r++)
        {
            for (var c = 0; c < active.Length; c++)
            {
                x[r, c] = rows[r].Share[active[c]];
            }

            y[r] = rows[r].Residual - common;
        }

        for (var c = 0; c < active.Length; c++)
        {
            x[rows.Count + c, c] = Math.Sqrt(Ridge * rows.Count);
        }

        var fit = WeightedLeastSquares.Solve(x, y);
        for (var c = 0; c < active.Length; c++)
        {
            shift[active[c]] = common + fit.Coefficients[c];
            se[active[c]] = fit.StandardErrors[c];
        }
    }

    private static double RelativeFitError(DeploymentModel model, BucketId bucket)
    {
        if (bucket.Kind == BucketKind.Prefill)
        {
            var p = model.PrefillBuckets[model.Buckets.PrefillIndex(bucket.Edge)];
            return p.IsFitted && p.AMs > 0 ? p.AStandardError / p.AMs : 0;
        }

        var d = model.DecodeBuckets[model.Buckets.DecodeIndex(bucket.Edge)];
        return d.IsFitted && d.StepMs > 0 ? d.StepStandardError / d.StepMs : 0;
    }
}
