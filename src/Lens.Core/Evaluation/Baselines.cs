using MathNet.Numerics.LinearAlgebra;

namespace Lens.Core;

/// <summary>Anything that predicts E2E and TTFT (ms) for a request: LENS's model or a baseline.</summary>
public interface ILatencyPredictor
{
    string Name { get; }

    /// <summary>Predicted E2E and TTFT for <c>I</c> prompt and <c>O</c> output tokens.</summary>
    (double E2eMs, double TtftMs) PredictLatency(int inputLength, int outputLength);
}

/// <summary>LENS's composed model as an <see cref="ILatencyPredictor"/>.</summary>
public sealed class LensPredictor(DeploymentModel model) : ILatencyPredictor
{
    public string Name => "LENS";

    public (double E2eMs, double TtftMs) PredictLatency(int inputLength, int outputLength)
    {
        var p = model.Predict(inputLength, outputLength);
        return (p.E2eMs, p.TtftMs);
    }
}

/// <summary>
/// Baselines fitted on the same profiling measurements (method.md, "Baselines"). Repeats are reduced with the same statistic first.
/// </summary>
public static class Baselines
{
    /// <summary>
    /// Smooth regression: <c>E2E = b0 + b1 I + b2 O + b3 I O</c> by least squares, blind to buckets as GPU-side predictors are.
    /// TTFT is <c>c0 + c1 I</c> on measured TTFT where the backend streamed, else the E2E surface at <c>O = 1</c>.
    /// </summary>
    public static ILatencyPredictor SmoothRegression(IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic)
    {
        var points = Reduce(measurements, statistic);
        var b = LeastSquares(points.Select(p => new double[] { 1, p.I, p.O, (double)p.I * p.O }), points.Select(p => p.E2e));
        var ttft = TtftLine(points);
        return new Baseline("smooth regression (1, I, O, I*O)",
            (i, o) => b[0] + (b[1] * i) + (b[2] * o) + (b[3] * i * o),
            i => ttft is { } t ? t[0] + (t[1] * i) : b[0] + (b[1] * i) + b[2] + (b[3] * i));
    }

    /// <summary>
    /// Per-token linear: TTFT linear in <c>I</c>, a constant TPOT: <c>E2E = a + b I + tpot (O - 1)</c> by least squares
    /// (the model most serving simulators assume). TTFT is fitted on measured TTFT where available.
    /// </summary>
    public static ILatencyPredictor PerTokenLinear(IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic)
    {
        var points = Reduce(measurements, statistic);
        var b = LeastSquares(points.Select(p => new double[] { 1, p.I, p.O - 1 }), points.Select(p => p.E2e));
        var ttft = TtftLine(points);
        return new Baseline("per-token linear (TTFT ~ I, constant TPOT)",
            (i, o) => b[0] + (b[1] * i) + (b[2] * (o - 1)),
            i => ttft is { } t ? t[0] + (t[1] * i) : b[0] + (b[1] * i));
    }

    private sealed class Baseline(string name, Func<int, int, double> e2e, Func<int, double> ttft) : ILatencyPredictor
    {
        public string Name => name;

        public (double E2eMs, double TtftMs) PredictLatency(int inputLength, int outputLength) => (e2e(inputLength, outputLength), ttft(inputLength));
    }

    private readonly record struct ReducedPoint(int I, int O, double E2e, double? Ttft);

    private static ReducedPoint[] Reduce(IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic)
    {
        var points = measurements.GroupBy(m => (m.InputLength, m.OutputLength)).OrderBy(g => g.Key).Select(g =>
        {
            var ttfts = g.Where(m => m.TtftMs is not null).Select(m => m.TtftMs!.Value).ToArray();
            return new ReducedPoint(g.Key.InputLength, g.Key.OutputLength, statistic.Reduce(g.Select(m => m.E2eMs).ToArray()),
                ttfts.Length > 0 ? statistic.Reduce(ttfts) : null);
        }).ToArray();
        if (points.Length == 0)
        {
            throw new ArgumentException("a baseline needs at least one measurement");
        }

        return points;
    }

    private static double[]? TtftLine(ReducedPoint[] points)
    {
        var withTtft = points.Where(p => p.Ttft is not null).ToArray();
        return withTtft.Select(p => p.I).Distinct().Count() < 2
            ? null
            : LeastSquares(withTtft.Select(p => new double[] { 1, p.I }), withTtft.Select(p => p.Ttft!.Value));
    }

    /// <summary>Least squares by SVD, so a design the plan leaves rank-deficient still gives the minimum-norm answer.</summary>
    private static double[] LeastSquares(IEnumerable<double[]> rows, IEnumerable<double> targets)
    {
        var x = Matrix<double>.Build.DenseOfRowArrays(rows);
        var y = Vector<double>.Build.DenseOfEnumerable(targets);
        return x.Svd(computeVectors: true).Solve(y).ToArray();
    }
}
