using MathNet.Numerics.LinearAlgebra;

namespace Lens.Core;

/// <summary>What the policy fit found for one cost cell.</summary>
/// <param name="Cell">The cell (<see cref="StepCells"/> index).</param>
/// <param name="Name">Its name (<see cref="StepCells.Name"/>).</param>
/// <param name="Ms">Its fitted cost; NaN when unfitted.</param>
/// <param name="StandardError">Its standard error from the design.</param>
/// <param name="Measurements">Distinct measurements whose counts reach it.</param>
/// <param name="Note">Why it is unfitted, or that the constraint held it at zero; null otherwise.</param>
public sealed record CellFit(int Cell, string Name, double Ms, double StandardError, int Measurements, string? Note);

/// <summary>A policy fit: the model, each cell's fit, and the design's size.</summary>
public sealed record PolicyFit(DeploymentModel Model, IReadOnlyList<CellFit> Cells, int Points, int Equations)
{
    /// <summary>Cells that steps of the policy use but no measurement determines, with the reason.</summary>
    public IEnumerable<CellFit> Unfitted => Cells.Where(c => double.IsNaN(c.Ms) && c.Note is not null);
}

/// <summary>
/// The policy-independent fit (method.md, "Scheduling policies: every stack's scheduler, one fit for all"): every measurement, one
/// request alone or a group released together, is run through the policy's <see cref="PolicyScheduler"/> with symbolic costs
/// (<see cref="PolicyDesign"/>), so its E2E (and, where the first token ends a step, its TTFT) is linear in the unknown cell costs;
/// all cells are fitted at once by non-negative weighted least squares (<see cref="NonNegativeLeastSquares"/>), weighted by relative
/// error (the variance of a point is proportional to its value squared, over its repeats), with standard errors from the design.
/// <list type="bullet">
/// <item>A cell no measurement reaches, or one the design cannot separate from others (a null direction of the counts), is unfitted
/// (NaN) and named; measurements that touch a confounded cell are left out, never guessed around.</item>
/// <item>Prefill-first: a prefill's first token comes at its measured TTFT, inside the step, so TTFT is not a sum of whole cells; a
/// release whose first token is its first prefill (every release on an idle replica) gives the TTFT of that prefill bucket directly,
/// reduced and combined per bucket as <see cref="DeploymentModel.Compose"/> does. Chunked: the first token ends a step, so TTFT is
/// one more linear equation.</item>
/// <item>Standard errors: with repeats, each point's variance is <c>(rho * value)^2 / repeats</c> with <c>rho</c> the pooled relative
/// noise of the repeats, and the covariance <c>(X' V^-1 X)^-1</c> is inflated by the reduced chi-square when points scatter more than
/// that; without repeats the scale is the residual's (none when the design has no spare equation).</item>
/// </list>
/// With prefill-first padded execution and today's plan this gives <see cref="BucketFitter"/>'s numbers on data the model fits
/// exactly, and under noise wherever the design has no spare equation (each unknown met by exactly the equations that determine it).
/// Where it has spares it uses them, where <see cref="BucketFitter"/> does not: a pair beyond the longest prompt leaves its short
/// request's known prefill and lower steps in a free intercept, and several estimates of one <c>A[p]</c> (pairs sharing a prefill
/// bucket, groups of <c>b</c> prefills, plateau checks) are combined by each one's own repeat variance rather than by the relative
/// weights of one fit; the two then agree within their standard errors, not to the digit.
/// </summary>
public static class PolicyFitter
{
    /// <summary>Fits every cell of <paramref name="buckets"/> under <paramref name="policy"/> from <paramref name="measurements"/>.</summary>
    public static PolicyFit Fit(BucketSet buckets, SchedulingPolicy policy, IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic,
        double intervalLevel = IntervalCalibration.DefaultLevel)
    {
        var scheduler = PolicyScheduler.For(buckets, policy);
        var points = PolicyDesign.Points(scheduler, measurements, statistic);
        return Fit(scheduler, points, statistic, intervalLevel);
    }

    /// <summary>Fits from points already counted (<see cref="PolicyDesign.Points"/>).</summary>
    public static PolicyFit Fit(PolicyScheduler scheduler, IReadOnlyList<PolicyPoint> points, RepeatStatistic statistic,
        double intervalLevel = IntervalCalibration.DefaultLevel)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(points);
        var cells = scheduler.Cells;
        var rho = RelativeNoise(points);

        // Equations: each point's E2E; chunked, its TTFT too (a step's end). Prefill-first TTFT goes per prefill bucket below.
        var rows = new List<(IReadOnlyList<CellCount> Counts, double Value, int Repeats)>();
        foreach (var p in points)
        {
            rows.Add((p.E2e, p.E2eMs, p.Repeats));
            if (!cells.UsesPrefill && p.TtftMs is { } t && t > 0)
            {
                rows.Add((p.Ttft, t, p.TtftRepeats));
            }
        }

        var reach = new int[cells.Count];
        foreach (var p in points)
        {
            foreach (var c in p.E2e)
            {
                reach[c.Cell]++;
            }
        }

        var notes = new string?[cells.Count];
        var (values, errors, held) = Solve(cells, rows, rho, notes);
        for (var c = 0; c < cells.Count; c++)
        {
            if (reach[c] == 0 && (!cells.IsPrefill(c) || cells.UsesPrefill))
            {
                notes[c] = "no measurement reaches it";
            }
            else if (held[c])
            {
                notes[c] = "came out below zero (noise larger than its share of the measurements): held at 0; measure more repeats";
            }
        }

        var model = Compose(scheduler, points, values, errors, statistic, rho, intervalLevel);
        var fits = Enumerable.Range(0, cells.Count)
            .Select(c => new CellFit(c, cells.Name(c), values[c], errors[c], reach[c], notes[c])).ToArray();
        return new PolicyFit(model, fits, points.Count, rows.Count);
    }

    private static (double[] Values, double[] Errors, bool[] Held) Solve(StepCells cells, List<(IReadOnlyList<CellCount> Counts, double Value, int Repeats)> rows,
        double rho, string?[] notes)
    {
        var values = Enumerable.Repeat(double.NaN, cells.Count).ToArray();
        var errors = new double[cells.Count];
        var held = new bool[cells.Count];
        var usable = rows.Where(r => r.Value > 0 && r.Counts.Count > 0).ToList();
        while (true)
        {
            var columns = usable.SelectMany(r => r.Counts.Where(c => c.Steps > 0).Select(c => c.Cell)).Distinct().Order().ToArray();
            if (columns.Length == 0 || usable.Count == 0)
            {
                return (values, errors, held);
            }

            var index = new Dictionary<int, int>();
            for (var k = 0; k < columns.Length; k++)
            {
                index[columns[k]] = k;
            }

            // Rows scaled by sqrt(weight) = sqrt(repeats) / value: relative error, the variance proportional to the value squared.
            var x = Matrix<double>.Build.Dense(usable.Count, columns.Length);
            var y = Vector<double>.Build.Dense(usable.Count);
            for (var r = 0; r < usable.Count; r++)
            {
                var scale = Math.Sqrt(usable[r].Repeats) / usable[r].Value;
                foreach (var c in usable[r].Counts)
                {
                    x[r, index[c.Cell]] = c.Steps * scale;
                }

                y[r] = usable[r].Value * scale;
            }

            // Cells along a null direction of the design are confounded: name them, drop the equations that involve them, fit the rest.
            var confounded = Confounded(x);
            if (confounded.Count > 0)
            {
                var names = confounded.Select(k => cells.Name(columns[k])).ToArray();
                foreach (var k in confounded)
                {
                    notes[columns[k]] = $"not identifiable from these measurements (confounded with {string.Join(", ", names.Where(n => n != cells.Name(columns[k])))})";
                }

                var drop = confounded.Select(k => columns[k]).ToHashSet();
                usable = [.. usable.Where(r => !r.Counts.Any(c => drop.Contains(c.Cell)))];
                continue;
            }

            var nnls = NonNegativeLeastSquares.Solve(x, y);
            var dof = usable.Count - columns.Length;
            var residual = y - (x * Vector<double>.Build.DenseOfArray(nnls.X));
            var rss = residual.DotProduct(residual);

            // Covariance (X'WX)^-1 times the variance scale: rho^2 (at least the reduced chi-square) with repeats, else rss / dof.
            var scaleVar = rho > 0 ? rho * rho * Math.Max(1, dof > 0 ? rss / (rho * rho * dof) : 1) : dof > 0 ? rss / dof : 0;
            var covariance = x.TransposeThisAndMultiply(x).Inverse();
            for (var k = 0; k < columns.Length; k++)
            {
                values[columns[k]] = nnls.X[k];
                errors[columns[k]] = Math.Sqrt(Math.Max(0, covariance[k, k] * scaleVar));
                held[columns[k]] = nnls.Held[k];
            }

            return (values, errors, held);
        }
    }

    /// <summary>Column indices with a non-negligible share of a null direction of <paramref name="x"/> (empty when of full column rank).</summary>
    internal static List<int> Confounded(Matrix<double> x)
    {
        var result = new List<int>();
        if (x.RowCount < x.ColumnCount)
        {
            // Pad with zero rows so the SVD gives every right singular vector.
            x = x.Stack(Matrix<double>.Build.Dense(x.ColumnCount - x.RowCount, x.ColumnCount));
        }

        // Columns are scaled to unit norm first, so the rank test does not depend on how many steps a column counts.
        var norms = Enumerable.Range(0, x.ColumnCount).Select(k => x.Column(k).L2Norm()).ToArray();
        var unit = Matrix<double>.Build.Dense(x.RowCount, x.ColumnCount, (r, k) => x[r, k] / norms[k]);
        var svd = unit.Svd(computeVectors: true);
        var s = svd.S;
        var tolerance = 1e-9 * Math.Max(1, s[0]) * Math.Max(x.RowCount, x.ColumnCount);
        for (var i = 0; i < x.ColumnCount; i++)
        {
            if (s[i] > tolerance)
            {
                continue;
            }

            var v = svd.VT.Row(i);
            for (var k = 0; k < x.ColumnCount; k++)
            {
                if (Math.Abs(v[k]) > 1e-6 && !result.Contains(k))
                {
                    result.Add(k);
                }
            }
        }

        return result;
    }

    /// <summary>Pooled relative standard deviation of the repeats of one point (E2E and TTFT), 0 without repeats.</summary>
    internal static double RelativeNoise(IReadOnlyList<PolicyPoint> points)
    {
        double sum = 0;
        var dof = 0;
        foreach (var values in points.SelectMany(p => new[] { p.E2eValues, p.TtftValues }).Where(v => v.Length > 1))
        {
            var mean = values.Average();
            var variance = values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1);
            sum += variance / (mean * mean) * (values.Length - 1);
            dof += values.Length - 1;
        }

        return dof > 0 ? Math.Sqrt(sum / dof) : 0;
    }

    private static DeploymentModel Compose(PolicyScheduler scheduler, IReadOnlyList<PolicyPoint> points, double[] values, double[] errors,
        RepeatStatistic statistic, double rho, double level)
    {
        var cells = scheduler.Cells;
        var buckets = scheduler.Buckets;

        // Prefill-first: TTFT and plateau estimates per prefill bucket, from releases whose first token is their first prefill and
        // (plateau) whose end is that bucket's prefills alone.
        var ttft = buckets.Prefill.Select(_ => new List<LengthEstimate>()).ToArray();
        var plateau = buckets.Prefill.Select(_ => new List<LengthEstimate>()).ToArray();
        if (cells.UsesPrefill)
        {
            foreach (var byLength in points.Where(p => p.TtftValues.Length > 0 && p.Ttft is [{ Steps: 1 } only] && cells.IsPrefill(only.Cell))
                         .GroupBy(p => (p.Ttft[0].Cell, p.Requests[0].InputLength)))
            {
                double[] all = [.. byLength.SelectMany(p => p.TtftValues)];
                var sd = all.Length > 1 ? Math.Sqrt(all.Sum(v => (v - all.Average()) * (v - all.Average())) / (all.Length - 1)) : 0;
                ttft[byLength.Key.Cell].Add(new LengthEstimate(byLength.Key.InputLength, statistic.Reduce([.. all]), sd / Math.Sqrt(all.Length)));
            }

            foreach (var p in points.Where(p => p.E2e is [var only] && cells.IsPrefill(only.Cell) && p.Requests.All(r => r == p.Requests[0])))
            {
                plateau[p.E2e[0].Cell].Add(new LengthEstimate(p.Requests[0].InputLength, p.E2eMs / p.E2e[0].Steps, 0));
            }
        }

        var prefill = new PrefillValues[buckets.Prefill.Length];
        for (var i = 0; i < prefill.Length; i++)
        {
            var (t, tSe) = DeploymentModel.Combine(ttft[i]);
            prefill[i] = new PrefillValues(buckets.Prefill[i], values[cells.Prefill(i)], errors[cells.Prefill(i)], t, tSe,
                DeploymentModel.PlateauSpread(plateau[i]));
        }

        var decode = new DecodeValues[cells.Rows * cells.Columns];
        for (var row = 0; row < cells.Rows; row++)
        {
            for (var column = 0; column < cells.Columns; column++)
            {
                var cell = cells.Step(row, column);
                decode[(row * cells.Columns) + column] = new DecodeValues(buckets.Decode[column], values[cell], errors[cell], buckets.Batch[row]);
            }
        }

        // Interval calibration from each point's own repeats (one-sided excess over its statistic), pooled as the bucket fit does.
        var excess = points.Select(p => RepeatExcess.Of(
            p.E2eValues.Select((e, k) => new MeasuredRequest(1, 1, e, k < p.TtftValues.Length ? p.TtftValues[k] : null)), statistic));
        var model = new DeploymentModel(buckets, prefill, decode, statistic, rho, IntervalCalibration.Of(excess, rho, statistic, level));
        return scheduler.Policy.IsDefault ? model : model.WithPolicy(scheduler.Policy);
    }
}
