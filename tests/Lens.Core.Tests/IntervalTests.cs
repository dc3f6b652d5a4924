namespace Lens.Core.Tests;

public sealed class IntervalTests
{
    private static readonly BucketSet Small = new([8], [8, 16]);

    [Theory]
    [InlineData(300, 0, true)]    // 100%: 5 points above 95%, the bound included
    [InlineData(300, 15, true)]   // 95%
    [InlineData(300, 30, true)]   // 90%: 5 points below
    [InlineData(300, 31, false)]  // 89.7%
    [InlineData(0, 0, false)]     // nothing measured
    public void Coverage_within_a_tolerance_includes_its_bound(int count, int above, bool within) =>
        Assert.Equal(within, new Coverage(count, 0, above).Within(0.95, 0.05));

    /// <summary>Two repeated points (min 10 and 20) and one single one; TTFT streamed on the repeated ones.</summary>
    private static MeasuredRequest[] HandSet() =>
    [
        new(8, 1, 10, 5), new(8, 1, 11, 5), new(8, 1, 12, 6),
        new(8, 5, 20, 5.5), new(8, 5, 20, 7), new(8, 5, 22, 5),
        new(8, 3, 15),
    ];

    [Fact]
    public void Calibration_is_the_pooled_quantiles_of_the_repeats_excess()
    {
        // E2E excess of each repeat over the min of its point's other repeats: (8,1) 10 vs 11, 11 vs 10, 12 vs 10 -> -1/11, .1, .2;
        // (8,5) 20 vs 20, 20 vs 20, 22 vs 20 -> 0, 0, .1; the single point adds nothing. Sorted: -1/11 0 0 .1 .1 .2.
        // Floors: (8,1) (10 - 1 - 10) / 10 = -.1, (8,5) (20 - 0 - 20) / 20 = 0. Level 0.8: quantiles at .1 and .9 (type 7).
        // TTFT by prompt length 8: 5 5 5 5.5 6 7 -> 0 0 0 .1 .2 .4; floor (5 - 0 - 5) / 5 = 0.
        var excess = RepeatExcess.Of(HandSet(), RepeatStatistic.Min);
        var c = IntervalCalibration.Of([excess], relativeNoise: 0.5, RepeatStatistic.Min, level: 0.8);
        Assert.Equal(0.8, c.Level);
        Assert.Equal(-1.0 / 22, c.E2e.Low, 12);
        Assert.Equal(0.15, c.E2e.High, 12);
        Assert.Equal(-0.09, c.E2e.Floor, 12);
        Assert.Equal(6, c.E2e.Repeats);
        Assert.Equal(0, c.Ttft.Low, 12);
        Assert.Equal(0.3, c.Ttft.High, 12);
        Assert.Equal(0, c.Ttft.Floor, 12);
        Assert.Equal(6, c.Ttft.Repeats);

        // m = 100, se = 5, z(0.9) = 1.2816: high = 100 + max(15, 6.408); low = 100 - max(100/22, 6.408), above the floor 91.
        Assert.Equal(1.2815515655446008, c.Z, 12);
        var (low, high) = c.E2e.Interval(100, 5, c.Z);
        Assert.Equal(115, high, 9);
        Assert.Equal(100 - (5 * 1.2815515655446008), low, 9);
        (low, _) = c.E2e.Interval(100, 1000, c.Z);
        Assert.Equal(91, low, 9); // a huge standard error stops at the floor
    }

    [Fact]
    public void A_median_profile_leaves_out_each_repeat_from_its_points_median()
    {
        // (8,1): 10 vs median(11, 12) = 11.5, 11 vs 11, 12 vs 10.5; (8,5): 20 vs 21, 20 vs 21, 22 vs 20. Floors (10 - 1 - 11) / 11, 0.
        var model = BucketFitter.Fit(Small, HandSet(), RepeatStatistic.Median);
        var c = model.Calibration;
        Assert.Equal(IntervalCalibration.DefaultLevel, c.Level);
        double[] sorted = [-1.5 / 11.5, -1.0 / 21, -1.0 / 21, 0, 0.1, 1.5 / 10.5];
        Assert.Equal(RepeatStatistic.QuantileOfSorted(sorted, 0.025), c.E2e.Low, 12);
        Assert.Equal(RepeatStatistic.QuantileOfSorted(sorted, 0.975), c.E2e.High, 12);
        Assert.Equal(RepeatStatistic.QuantileOfSorted([-2.0 / 11, 0], 0.025), c.E2e.Floor, 12);
        Assert.Equal(6, c.E2e.Repeats);
    }

    [Fact]
    public void The_low_end_is_never_below_zero_nor_the_floor_and_brackets_the_point()
    {
        // A tiny, noisy device: one repeat in three is ten times slower, which inflates the fit's standard errors.
        var device = Synthetic.Random(new BucketSet([16, 32, 64], [16, 32, 64, 128]), seed: 3);
        var rows = ProfilingPlanner.Create(device.Buckets, new PlanOptions(Repeats: 3)).Rows;
        var n = 0;
        var measured = device.Measure(rows, () => n++ % 3 == 2 ? 9 : 0.01 * (n % 5)).ToArray();
        var model = BucketFitter.Fit(device.Buckets, measured, RepeatStatistic.Min);
        Assert.True(model.IsComplete);
        var rng = new Random(5);
        for (var k = 0; k < 2000; k++)
        {
            var i = rng.Next(1, 65);
            var o = rng.Next(1, 128 - i + 1);
            var p = model.Predict(i, o);
            Assert.True(p.E2eLowMs >= 0 && p.E2eLowMs >= (p.E2eMs * (1 + model.Calibration.E2e.Floor)) - 1e-9, $"({i}, {o}): {p}");
            Assert.True(p.E2eLowMs <= p.E2eMs && p.E2eMs <= p.E2eHighMs, $"({i}, {o}): {p}");
            Assert.True(p.TtftLowMs >= 0 && p.TtftLowMs <= p.TtftMs && p.TtftMs <= p.TtftHighMs, $"({i}, {o}): {p}");
        }

        // Without calibration (an old file) and a standard error larger than the point, the low end stops at zero.
        var fallback = IntervalCalibration.Fallback(relativeNoise: 2, RepeatStatistic.Median);
        Assert.Equal(0, fallback.E2e.Interval(1.4, 5, fallback.Z).Low);
        Assert.Equal(0, fallback.E2e.Repeats);
    }

    [Theory]
    [InlineData(0.95, 11)]
    [InlineData(0.95, 12)]
    public void Coverage_on_one_sided_noise_is_near_the_stated_level(double level, int seed)
    {
        // Interference only slows a request: every timing is its true cost times 1 + an exponential excess (mean 3%). Many narrow
        // buckets, so that held-out requests rest on many independent points (requests of one bucket share its fit's error).
        var edges = Enumerable.Range(1, 32).Select(k => k * 32).ToArray();
        var device = Synthetic.Random(new BucketSet(edges[..16], edges), seed);
        var plan = EvaluationPlan.Create(device.Buckets, new EvaluationOptions(HeldOut: 400, Repeats: 3, Seed: seed));
        var rng = new Random(seed);
        double Noise() => -0.03 * Math.Log(1 - rng.NextDouble());
        var rows = plan.Rows.Select(r =>
        {
            var e2e = device.E2e(r.InputLength, r.OutputLength) * (1 + Noise());
            return new MeasuredRow(r, e2e, Math.Min(e2e, device.Ttft(r.InputLength) * (1 + Noise())));
        }).ToArray();

        var profile = rows.Where(r => r.Row.Role == EvaluationRole.Profile).Select(r => r.ToMeasurement());
        var model = DeploymentModel.Compose(device.Buckets, BucketFitter.FitAll(device.Buckets, profile, RepeatStatistic.Min), RepeatStatistic.Min,
            level);
        var heldOut = IntervalCoverage.Of(model, rows.Where(r => r.Row.Role is EvaluationRole.HeldOut or EvaluationRole.HeldOutTwin)
            .Select(r => r.ToMeasurement()));
        Assert.Equal(level, heldOut.Level);
        Assert.Equal(2400, heldOut.E2e.Count);
        Assert.True(Math.Abs(heldOut.E2e.Fraction - level) <= 0.03, $"E2E {heldOut.E2e}");
        Assert.True(Math.Abs(heldOut.Ttft.Fraction - level) <= 0.05, $"TTFT {heldOut.Ttft}");
        Assert.True(heldOut.E2e.Above > heldOut.E2e.Below, $"misses fall above a min-statistic point: {heldOut.E2e}");
    }

    [Fact]
    public void The_evaluation_score_counts_held_out_and_twin_measurements_inside_the_interval()
    {
        var device = Synthetic.Random(new BucketSet([16, 32], [16, 32, 64]), seed: 2);
        var plan = EvaluationPlan.Create(device.Buckets, new EvaluationOptions(HeldOut: 10, Repeats: 2, Seed: 2));
        // Profile repeats 1% apart calibrate a 1% band; held-out repeats 0.5% apart fall inside it (1% would be a floating-point tie).
        var rows = plan.Rows.Select(r => new MeasuredRow(r,
                device.E2e(r.InputLength, r.OutputLength) * (r.Repeat == 0 ? 1 : r.Role == EvaluationRole.Profile ? 1.01 : 1.005), null))
            .ToArray();
        var score = EvaluationScore.Compute(device.Buckets, rows, RepeatStatistic.Min);
        Assert.Equal(20, score.HeldOutCoverage.E2e.Count);
        Assert.Equal(20, score.TwinCoverage.E2e.Count);
        Assert.Equal(0, score.HeldOutCoverage.E2e.Below + score.HeldOutCoverage.E2e.Above);
        Assert.Equal(1.0, score.TwinCoverage.E2e.Fraction);
    }

    [Fact]
    public void Model_files_keep_the_calibration_and_old_files_load_with_the_fallback()
    {
        var model = BucketFitter.Fit(Small, HandSet(), RepeatStatistic.Min);
        var back = ModelJson.Deserialize(ModelJson.Serialize(model), "m.json");
        Assert.Equal(model.Calibration, back.Calibration);
        Assert.Equal(model.Predict(8, 5), back.Predict(8, 5));

        const string old = """
            { "format": "lens-model", "version": 1, "prefillBuckets": [8], "decodeBuckets": [8, 16], "convention": "after-append",
              "statistic": "min", "relativeNoise": 0.02,
              "prefill": [ { "edge": 8, "aMs": 10, "aStandardError": 0.5, "ttftMs": "NaN", "ttftStandardError": 0, "plateauSpread": "NaN" } ],
              "decode": [ { "edge": 8, "stepMs": 1, "stepStandardError": 0 }, { "edge": 16, "stepMs": 2, "stepStandardError": 0 } ] }
            """;
        var legacy = ModelJson.Deserialize(old, "old.json");
        Assert.Equal(0, legacy.Calibration.E2e.Repeats);
        Assert.Equal(0.95, legacy.Calibration.Level);
        var p = legacy.Predict(4, 1); // A = 10 with se 0.5, min statistic: no noise below the point
        Assert.Equal(10 - (1.959963984540054 * 0.5), p.E2eLowMs, 9);
        Assert.Equal(10 + Math.Max(1.959963984540054 * 0.02 * 10, 1.959963984540054 * 0.5), p.E2eHighMs, 9);

        var bad = old.Replace("\"relativeNoise\": 0.02,", "\"relativeNoise\": 0.02, \"calibration\": { \"level\": 1.5, \"e2e\": null, \"ttft\": null },",
            StringComparison.Ordinal);
        Assert.Contains("level", Assert.Throws<FormatException>(() => ModelJson.Deserialize(bad, "bad.json")).Message, StringComparison.Ordinal);
    }
}
