namespace Lens.Core.Tests;

public class ServingComparisonTests
{
    [Fact]
    public void Figures_take_percentiles_per_request_and_throughput_from_first_arrival_to_last_completion()
    {
        // Request 0: arrives at 0, 3 tokens, first at 10, done at 12 (TPOT 1). Request 1: arrives at 5, 1 token, done at 9 (no TPOT).
        var f = ServingFigures.Of([new ServedLatency(0, 3, 10, 12), new ServedLatency(5, 1, 4, 4)]);
        Assert.Equal(2, f.Requests);
        Assert.Equal(LatencyPercentiles.Of([10.0, 4.0]), f.Ttft);
        Assert.Equal(LatencyPercentiles.Of([12.0, 4.0]), f.E2e);
        Assert.Equal(LatencyPercentiles.Of([1.0]), f.Tpot);
        Assert.Equal(2 / 0.012, f.RequestsPerSecond, 9);
        Assert.Equal(4 / 0.012, f.OutputTokensPerSecond, 9);
        Assert.Equal(["TTFT p50 (ms)", "TTFT p90 (ms)", "TPOT p50 (ms)", "TPOT p90 (ms)", "E2E p50 (ms)", "E2E p90 (ms)", "requests/s", "output tokens/s"],
            f.Named().Select(n => n.Name));
    }

    [Theory]
    [InlineData(100, 110, 118, 0.3, 0.10, 0.20, true)]   // the noise floor (10%) sets the goal: 2 x 10% = 20%
    [InlineData(100, 110, 121, 0.3, 0.10, 0.20, false)]
    [InlineData(100, 90, 80, 0.6, 0.10, 0.20, true)]     // either side
    [InlineData(100, 101, 104, 0.6, 0.01, 0.05, true)]   // a quiet pair up to 60% load: the 5% floor of the goal
    [InlineData(100, 101, 106, 0.6, 0.01, 0.05, false)]
    [InlineData(100, 101, 109, 0.85, 0.01, 0.10, true)]  // above 60%: the 10% floor
    [InlineData(100, 101, 111, 0.85, 0.01, 0.10, false)]
    public void A_figure_is_met_within_the_larger_of_the_loads_least_goal_and_twice_its_noise_floor(double measured, double twin, double predicted,
        double load, double noise, double goal, bool met)
    {
        var c = new FigureComparison("E2E p50 (ms)", measured, twin, predicted, FigureComparison.MinGoalAt(load));
        Assert.Equal(noise, c.NoiseFloor, 12);
        Assert.Equal(goal, c.Goal, 12);
        Assert.Equal(met, c.Met);
    }

    [Fact]
    public void Comparison_pairs_the_same_figure_of_the_three_runs()
    {
        var a = ServingFigures.Of([new ServedLatency(0, 3, 10, 12)]);
        var b = ServingFigures.Of([new ServedLatency(0, 3, 20, 24)]);
        var c = ServingFigures.Of([new ServedLatency(0, 3, 30, 36)]);
        var ttft = ServingComparison.Compare(a, b, c)[0];
        Assert.Equal(("TTFT p50 (ms)", 10.0, 20.0, 30.0), (ttft.Figure, ttft.Measured, ttft.Twin, ttft.Predicted));
    }

    [Fact]
    public void The_sustainable_rate_is_the_throughput_of_a_queue_that_never_empties()
    {
        // One slot, A = 10, S = 1: each request (O = 3) takes 10 + 2 = 12 ms whatever its arrival; two of them 24 ms: 2 / 0.024 s.
        var buckets = new BucketSet([16], [32], DecodeConvention.AfterAppend, [1]);
        var model = new DeploymentModel(buckets, [new PrefillValues(16, 10, 0, 10, 0, double.NaN)], [new DecodeValues(32, 1, 0, 1)],
            RepeatStatistic.Min, 0);
        var rate = ServingComparison.SaturatedRequestsPerSecond(model, [new TraceRequest(500, 1, 3), new TraceRequest(9000, 4, 3)]);
        Assert.Equal(2 / 0.024, rate, 9);
    }
}
