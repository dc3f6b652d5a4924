using MathNet.Numerics.LinearAlgebra;

namespace Lens.Core;

/// <summary>Coefficients of a linear least-squares fit and their standard errors (0 where the data give none).</summary>
public sealed record LeastSquaresResult(double[] Coefficients, double[] StandardErrors, int DegreesOfFreedom);

/// <summary>
/// Least squares <c>y = X b</c> by QR (MathNet). With known point variances <c>v</c> the fit is weighted by <c>1/v</c> and the
/// covariance is <c>(X'WX)^-1</c>, inflated by the reduced chi-square when the points scatter more than their variances say;
/// without them it is ordinary least squares with covariance <c>s^2 (X'X)^-1</c> from the residuals, when there are spare points.
/// </summary>
public static class WeightedLeastSquares
{
    public static LeastSquaresResult Solve(Matrix<double> x, Vector<double> y, Vector<double>? variances = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        int n = x.RowCount, k = x.ColumnCount;
        if (n < k)
        {
            throw new ArgumentException($"least squares needs at least as many points ({n}) as unknowns ({k})");
        }

        var weighted = variances is not null && variances.All(v => v > 0);
        var sqrtW = weighted ? variances!.Map(v => 1 / Math.Sqrt(v)) : Vector<double>.Build.Dense(n, 1);
        var xw = Matrix<double>.Build.DenseOfMatrix(x);
        for (var r = 0; r < n; r++)
        {
            xw.SetRow(r, x.Row(r) * sqrtW[r]);
        }

        var yw = y.PointwiseMultiply(sqrtW);
        var coefficients = xw.QR().Solve(yw);
        var dof = n - k;
        var residual = yw - (xw * coefficients);
        var rss = residual.DotProduct(residual);
        double scale;
        if (weighted)
        {
            scale = dof > 0 ? Math.Max(1, rss / dof) : 1;
        }
        else
        {
            scale = dof > 0 ? rss / dof : 0;
        }

        var se = new double[k];
        if (scale > 0)
        {
            var covariance = (xw.TransposeThisAndMultiply(xw)).Inverse() * scale;
            for (var i = 0; i < k; i++)
            {
                se[i] = Math.Sqrt(Math.Max(0, covariance[i, i]));
            }
        }

        return new LeastSquaresResult(coefficients.ToArray(), se, dof);
    }
}

/// <summary>
/// Least squares of <c>y = c[g] + s * x</c>: one intercept per group <c>g</c> and one slope shared by all groups (a decode bucket's
/// fit, method.md "Profiling"). The same answer, weights and standard errors as <see cref="WeightedLeastSquares.Solve"/> on the
/// design matrix with one indicator column per group and <c>x</c> last, in closed form: that matrix has a column per group, so
/// building it and its QR would cost rows x groups memory and rows x groups^2 time. This is linear in the rows.
/// <para>
/// With weights <c>w</c> (<c>1/v</c>, or 1 when a variance is missing), group means <c>mx[g]</c>, <c>my[g]</c> and total weights
/// <c>W[g]</c>: <c>s = Sxy / Sxx</c> over deviations from the group means, <c>c[g] = my[g] - s mx[g]</c>, and
/// <c>(X'WX)^-1</c> has <c>var(s) = 1/Sxx</c>, <c>var(c[g]) = 1/W[g] + mx[g]^2 / Sxx</c>.
/// </para>
/// </summary>
public static class SharedSlopeLeastSquares
{
    /// <param name="group">Each row's group, 0 .. <paramref name="groups"/> - 1; every group must have a row.</param>
    /// <param name="variances">Each row's variance; weighted only when all are positive (as <see cref="WeightedLeastSquares.Solve"/>).</param>
    /// <param name="minSlope">The least slope allowed: a slope below it is held there, with each intercept the best for that slope
    /// (the constrained least-squares optimum, as the objective is a parabola in the slope).</param>
    /// <returns>Coefficients <c>c[0] .. c[groups - 1], s</c> and their standard errors.</returns>
    public static LeastSquaresResult Solve(ReadOnlySpan<int> group, ReadOnlySpan<double> x, ReadOnlySpan<double> y, ReadOnlySpan<double> variances,
        int groups, double minSlope = double.NegativeInfinity)
    {
        int n = group.Length, k = groups + 1;
        if (x.Length != n || y.Length != n || variances.Length != n)
        {
            throw new ArgumentException($"rows disagree: {n} groups, {x.Length} x, {y.Length} y, {variances.Length} variances");
        }

        if (n < k)
        {
            throw new ArgumentException($"least squares needs at least as many points ({n}) as unknowns ({k})");
        }

        var weighted = true;
        foreach (var v in variances)
        {
            weighted &= v > 0;
        }

        var w = new double[groups];
        var mx = new double[groups];
        var my = new double[groups];
        for (var r = 0; r < n; r++)
        {
            var g = group[r];
            var wr = weighted ? 1 / variances[r] : 1;
            w[g] += wr;
            mx[g] += wr * x[r];
            my[g] += wr * y[r];
        }

        for (var g = 0; g < groups; g++)
        {
            if (!(w[g] > 0))
            {
                throw new ArgumentException($"group {g} has no rows");
            }

            mx[g] /= w[g];
            my[g] /= w[g];
        }

        double sxx = 0, sxy = 0;
        for (var r = 0; r < n; r++)
        {
            var wr = weighted ? 1 / variances[r] : 1;
            var dx = x[r] - mx[group[r]];
            sxx += wr * dx * dx;
            sxy += wr * dx * (y[r] - my[group[r]]);
        }

        if (!(sxx > 0))
        {
            throw new ArgumentException("the slope is not determined: every group has a single x");
        }

        var slope = Math.Max(minSlope, sxy / sxx);
        var coefficients = new double[k];
        for (var g = 0; g < groups; g++)
        {
            coefficients[g] = my[g] - (slope * mx[g]);
        }

        coefficients[groups] = slope;
        double rss = 0;
        for (var r = 0; r < n; r++)
        {
            var wr = weighted ? 1 / variances[r] : 1;
            var e = y[r] - coefficients[group[r]] - (slope * x[r]);
            rss += wr * e * e;
        }

        var dof = n - k;
        var scale = weighted ? (dof > 0 ? Math.Max(1, rss / dof) : 1) : (dof > 0 ? rss / dof : 0);
        var se = new double[k];
        if (scale > 0)
        {
            for (var g = 0; g < groups; g++)
            {
                se[g] = Math.Sqrt(((1 / w[g]) + (mx[g] * mx[g] / sxx)) * scale);
            }

            se[groups] = Math.Sqrt(scale / sxx);
        }

        return new LeastSquaresResult(coefficients, se, dof);
    }
}
