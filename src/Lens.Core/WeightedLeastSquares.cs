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
