using MathNet.Numerics.LinearAlgebra;

namespace Lens.Core;

/// <summary>
/// Non-negative least squares <c>min ||A x - b||</c> subject to <c>x &gt;= 0</c> by the active-set method of Lawson and Hanson
/// (Solving Least Squares Problems, 1974, ch. 23): variables move from the active set (held at 0) to the passive set while the
/// gradient <c>A'(b - A x)</c> has a positive component, and each inner least-squares solution on the passive set (QR) is pulled back
/// along the segment from the current point until it is feasible. When the unconstrained solution is positive it is returned as is.
/// </summary>
public static class NonNegativeLeastSquares
{
    private const double MachineEpsilon = 2.220446049250313e-16;

    /// <summary>The solution and which variables ended held at zero by the constraint.</summary>
    public sealed record Result(double[] X, bool[] Held, int Iterations);

    public static Result Solve(Matrix<double> a, Vector<double> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        int m = a.RowCount, n = a.ColumnCount;
        if (b.Count != m)
        {
            throw new ArgumentException($"rows disagree: A has {m}, b has {b.Count}");
        }

        var x = new double[n];
        var passive = new bool[n];
        var tolerance = 10 * MachineEpsilon * a.L1Norm() * Math.Max(m, n);
        var iterations = 0;
        var limit = 3 * Math.Max(n, 1) + 10;
        while (iterations < limit)
        {
            var w = Gradient(a, b, x);
            var best = -1;
            for (var j = 0; j < n; j++)
            {
                if (!passive[j] && w[j] > tolerance && (best < 0 || w[j] > w[best]))
                {
                    best = j;
                }
            }

            if (best < 0)
            {
                break;
            }

            passive[best] = true;
            while (iterations++ < limit)
            {
                var s = SolvePassive(a, b, passive);
                var feasible = true;
                for (var j = 0; j < n; j++)
                {
                    feasible &= !passive[j] || s[j] > tolerance;
                }

                if (feasible)
                {
                    x = s;
                    break;
                }

                // Step from x towards s as far as every passive variable stays non-negative, then drop those that reached 0.
                var alpha = double.PositiveInfinity;
                for (var j = 0; j < n; j++)
                {
                    if (passive[j] && s[j] <= tolerance)
                    {
                        alpha = Math.Min(alpha, x[j] / (x[j] - s[j]));
                    }
                }

                for (var j = 0; j < n; j++)
                {
                    x[j] += alpha * (s[j] - x[j]);
                    if (passive[j] && x[j] <= tolerance)
                    {
                        passive[j] = false;
                        x[j] = 0;
                    }
                }
            }
        }

        return new Result(x, [.. passive.Select(p => !p)], iterations);
    }

    private static double[] Gradient(Matrix<double> a, Vector<double> b, double[] x) =>
        a.TransposeThisAndMultiply(b - (a * Vector<double>.Build.DenseOfArray(x))).ToArray();

    private static double[] SolvePassive(Matrix<double> a, Vector<double> b, bool[] passive)
    {
        var columns = Enumerable.Range(0, passive.Length).Where(j => passive[j]).ToArray();
        var s = new double[passive.Length];
        if (columns.Length == 0)
        {
            return s;
        }

        var sub = Matrix<double>.Build.Dense(a.RowCount, columns.Length, (r, c) => a[r, columns[c]]);
        var solution = sub.QR().Solve(b);
        for (var c = 0; c < columns.Length; c++)
        {
            s[columns[c]] = solution[c];
        }

        return s;
    }
}
