namespace Lens.Core.Tests;

public class BaselineAndMetricTests
{
    [Fact]
    public void Smooth_regression_recovers_a_bilinear_surface()
    {
        var data = Grid().Select(p => new MeasuredRequest(p.I, p.O, 3 + (0.01 * p.I) + (0.5 * p.O) + (0.001 * p.I * p.O))).ToArray();
        var model = Baselines.SmoothRegression(data, RepeatStatistic.Min);
        Assert.Equal(3 + 1 + 5 + 1, model.PredictLatency(100, 10).E2eMs, 8);
    }

    [Fact]
    public void Per_token_linear_recovers_a_linear_ttft_and_a_constant_tpot()
    {
        var data = Grid().Select(p => new MeasuredRequest(p.I, p.O, 2 + (0.02 * p.I) + (0.7 * (p.O - 1)), 2 + (0.02 * p.I))).ToArray();
        var model = Baselines.PerTokenLinear(data, RepeatStatistic.Min);
        var (e2e, ttft) = model.PredictLatency(50, 11);
        Assert.Equal(2 + 1 + 7, e2e, 8);
        Assert.Equal(3, ttft, 8);
    }

    [Fact]
    public void Error_summary_reports_mean_median_p90_and_max()
    {
        var s = ErrorSummary.Of([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        Assert.Equal(new ErrorSummary(10, 5.5, 5.5, 9.1, 10), s with { P90 = Math.Round(s.P90, 9) });
        Assert.Equal(0, ErrorSummary.Of([]).Count);
    }

    [Fact]
    public void Evaluate_computes_e2e_ttft_and_tpot_errors_per_request()
    {
        var model = new DeploymentModel(new BucketSet([8], [8, 16]),
            [new PrefillValues(8, 10, 0, double.NaN, 0, double.NaN)], [new DecodeValues(8, 1, 0), new DecodeValues(16, 2, 0)],
            RepeatStatistic.Min, 0);
        // Measured: (4, 3) took 13 with TTFT 9 (predicted 12 and 10); (4, 1) took 8 (predicted 10); repeats reduced by min.
        var eval = Metrics.Evaluate(new LensPredictor(model),
            [new MeasuredRequest(4, 3, 13, 9), new MeasuredRequest(4, 3, 14, 9.5), new MeasuredRequest(4, 1, 8)], RepeatStatistic.Min);
        Assert.Equal("LENS", eval.Predictor);
        Assert.Equal(2, eval.E2e.Count);
        Assert.Equal(((1.0 / 13) + (2.0 / 8)) / 2 * 100, eval.E2e.Mean, 9);
        Assert.Equal(((1.0 / 9) + (2.0 / 8)) / 2 * 100, eval.Ttft.Mean, 9);
        Assert.Equal(1, eval.Tpot.Count);
        Assert.Equal(Math.Abs(1 - 2) / 2.0 * 100, eval.Tpot.Mean, 9); // predicted (12-10)/2 = 1, measured (13-9)/2 = 2
    }

    private static IEnumerable<(int I, int O)> Grid() =>
        from i in new[] { 1, 50, 100, 200 } from o in new[] { 1, 5, 20, 60 } select (i, o);
}
