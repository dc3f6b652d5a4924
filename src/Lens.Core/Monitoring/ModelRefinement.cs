using MathNet.Numerics.LinearAlgebra;

namespace Lens.Core;

/// <summary>
/// Refines a fitted model with observed production latencies (method.md, "Beyond the paper", 3). The profile's values are the
/// prior, each with its standard error; every observation adds the equation <c>E2E = A[pre(I)] + sum over buckets of n_j S[j]</c>,
/// with a standard deviation of <c>relativeNoise * E2E</c>. Weighted least squares over both gives the refined values and their
/// standard errors. Buckets no observation touches keep their profiled values.
/// </summary>
public static class ModelRefinement
{
    /// <summary>Relative standard error assumed for a profiled value that reports none (single repeats).</summary>
    public const double DefaultRelativeError = 0.02;

    /// <param name="observationNoise">Relative standard deviation of one observation (production noise: queueing, neighbours).</param>
    public static DeploymentModel Refine(DeploymentModel model, IReadOnlyList<Observation> observations, double observationNoise = 0.05)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(observations);
        if (!(observationNoise > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(observationNoise), observationNoise, "observation noise must be positive");
        }

        var buckets = model.Buckets;
        int m = buckets.Prefill.Length, n = buckets.Decode.Length;
        var prior = new double[m + n];
        var priorSe = new double[m + n];
        for (var i = 0; i < m; i++)
        {
            prior[i] = model.PrefillBuckets[i].AMs;
            priorSe[i] = SeOrDefault(model.PrefillBuckets[i].AStandardError, prior[i]);
        }

        for (var j = 0; j < n; j++)
        {
            prior[m + j] = model.DecodeBuckets[j].StepMs;
            priorSe[m + j] = SeOrDefault(model.DecodeBuckets[j].StepStandardError, prior[m + j]);
        }

        var usable = observations.Where(o => buckets.CheckRequest(o.InputLength, o.OutputLength) is null && o.E2eMs > 0).ToArray();
        var fitted = Enumerable.Range(0, m + n).Where(k => !double.IsNaN(prior[k])).ToArray();
        if (usable.Length == 0 || fitted.Length == 0)
        {
            return model;
        }

        var col = new int[m + n];
        Array.Fill(col, -1);
        for (var c = 0; c < fitted.Length; c++)
        {
            col[fitted[c]] = c;
        }

        // Observations that touch an unfitted bucket say nothing usable about the others: leave them out.
        var equations = new List<(double[] Steps, double E2e)>();
        foreach (var o in usable)
        {
            var steps = new double[fitted.Length];
            var complete = true;
            foreach (var share in model.Breakdown(o.InputLength, o.OutputLength))
            {
                var k = share.Bucket.Kind == BucketKind.Prefill ? buckets.PrefillIndex(share.Bucket.Edge) : m + buckets.DecodeIndex(share.Bucket.Edge);
                complete &= col[k] >= 0;
                if (col[k] >= 0)
                {
                    steps[col[k]] += share.Steps;
                }
            }

            if (complete)
            {
                equations.Add((steps, o.E2eMs));
            }
        }

        var x = Matrix<double>.Build.Dense(fitted.Length + equations.Count, fitted.Length);
        var y = Vector<double>.Build.Dense(fitted.Length + equations.Count);
        var v = Vector<double>.Build.Dense(fitted.Length + equations.Count);
        for (var c = 0; c < fitted.Length; c++)
        {
            x[c, c] = 1;
            y[c] = prior[fitted[c]];
            v[c] = priorSe[fitted[c]] * priorSe[fitted[c]];
        }

        for (var e = 0; e < equations.Count; e++)
        {
            var r = fitted.Length + e;
            for (var c = 0; c < fitted.Length; c++)
            {
                x[r, c] = equations[e].Steps[c];
            }

            y[r] = equations[e].E2e;
            var sd = observationNoise * equations[e].E2e;
            v[r] = sd * sd;
        }

        var solution = WeightedLeastSquares.Solve(x, y, v);
        var value = (double[])prior.Clone();
        var se = (double[])priorSe.Clone();
        for (var c = 0; c < fitted.Length; c++)
        {
            value[fitted[c]] = solution.Coefficients[c];
            se[fitted[c]] = solution.StandardErrors[c];
        }

        var prefill = model.PrefillBuckets.Select((p, i) => p with { AMs = value[i], AStandardError = double.IsNaN(value[i]) ? 0 : se[i] }).ToArray();
        var decode = model.DecodeBuckets.Select((d, j) => d with { StepMs = value[m + j], StepStandardError = double.IsNaN(value[m + j]) ? 0 : se[m + j] }).ToArray();
        return new DeploymentModel(buckets, prefill, decode, model.Statistic, model.RelativeNoise, model.Calibration);
    }

    private static double SeOrDefault(double se, double value) => se > 0 ? se : Math.Abs(value) * DefaultRelativeError;
}
