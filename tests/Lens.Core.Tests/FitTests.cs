namespace Lens.Core.Tests;

public class FitTests
{
    [Fact]
    public void Noiseless_step_data_recover_A_and_S_exactly_for_random_bucket_sets()
    {
        var rng = new Random(11);
        for (var trial = 0; trial < 200; trial++)
        {
            var convention = rng.Next(2) == 0 ? DecodeConvention.AfterAppend : DecodeConvention.BeforeAppend;
            var buckets = Synthetic.RandomBuckets(rng, convention);
            var device = Synthetic.Random(buckets, trial);
            var plan = ProfilingPlanner.Create(buckets, new PlanOptions(Seed: trial));
            foreach (var tagged in new[] { true, false })
            {
                var model = BucketFitter.Fit(buckets, device.Measure(plan.Rows, tag: tagged), RepeatStatistic.Min);
                Assert.True(model.IsComplete, $"{buckets} tagged={tagged}: unfitted {string.Join(",", model.Unfitted)}");
                for (var i = 0; i < buckets.Prefill.Length; i++)
                {
                    Assert.Equal(device.Ttft(buckets.Prefill[i]), model.PrefillBuckets[i].AMs, tolerance: 1e-9 * device.Ttft(buckets.Prefill[i]));
                }

                for (var q = 0; q < 20; q++)
                {
                    var input = rng.Next(1, Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1) + 1);
                    var output = rng.Next(1, buckets.MaxSequence - input + 1);
                    Assert.Equal(device.E2e(input, output), model.Predict(input, output).E2eMs, tolerance: 1e-9 * device.E2e(input, output));
                }
            }
        }
    }

    [Fact]
    public void One_sided_noise_with_repeats_and_the_min_statistic_stays_within_the_noise()
    {
        var buckets = BucketPresets.NxdInference(1024, 2048);
        var device = Synthetic.Random(buckets, 3);
        var rng = new Random(5);
        var plan = ProfilingPlanner.Create(buckets, new PlanOptions(Repeats: 5, Seed: 1));
        var model = BucketFitter.Fit(buckets, device.Measure(plan.Rows, () => rng.NextDouble() * 0.05), RepeatStatistic.Min);
        var errors = new List<double>();
        for (var q = 0; q < 500; q++)
        {
            var input = rng.Next(1, 1025);
            var output = rng.Next(1, 2048 - input + 1);
            errors.Add(Metrics.Ape(model.Predict(input, output).E2eMs, device.E2e(input, output)));
        }

        Assert.True(errors.Max() < 5, $"max error {errors.Max():F2}% with 5% one-sided noise");
        Assert.True(errors.Average() < 2, $"mean error {errors.Average():F2}%");
        Assert.True(model.RelativeNoise > 0);
        Assert.All(model.DecodeBuckets, d => Assert.True(d.StepStandardError > 0));
    }

    [Fact]
    public void Standard_errors_come_from_the_repeats()
    {
        // Two points of a decode bucket, each measured at 100 +- 1 and 200 +- 1 (three repeats), mean statistic.
        var buckets = new BucketSet([8], [8, 16]);
        var bucket = BucketId.Parse("decode-16");
        MeasuredRequest M(int o, double e2e) => new(8, o, e2e, null, bucket);
        var fit = BucketFitter.FitBucket(buckets, bucket, [M(1, 99), M(1, 100), M(1, 101), M(8, 199), M(8, 200), M(8, 201)], RepeatStatistic.Mean);
        Assert.Equal(100.0 / 7, fit.StepMs!.Value, 9);
        var pointSe = Math.Sqrt(1.0 / 3);                       // sample sd 1, three repeats
        Assert.Equal(Math.Sqrt(2) * pointSe / 7, fit.StepStandardError, 9);
        Assert.Equal(new LengthEstimate(8, 100, pointSe), fit.PrefillEstimates.Single() with { ValueMs = Math.Round(fit.PrefillEstimates.Single().ValueMs, 9) });
    }

    [Fact]
    public void A_step_cost_that_noise_pushes_below_zero_is_held_at_zero_with_a_warning()
    {
        // The longer request measured faster than the shorter (noise larger than 7 tiny steps): a free slope would be -1 ms/step,
        // and long outputs would be predicted faster than short ones, E2E below TTFT. The fit holds S at 0 and the intercept at the
        // best value for it (the mean of the two points).
        var buckets = new BucketSet([8], [8, 16]);
        var bucket = BucketId.Parse("decode-16");
        MeasuredRequest M(int o, double e2e) => new(8, o, e2e, null, bucket);
        var fit = BucketFitter.FitBucket(buckets, bucket, [M(1, 50), M(8, 43)], RepeatStatistic.Min);
        Assert.Equal(0, fit.StepMs!.Value);
        Assert.Contains("below zero", fit.Warning, StringComparison.Ordinal);
        Assert.Equal(46.5, fit.PrefillEstimates.Single().ValueMs, 9);

        var steady = BucketFitter.FitBucket(buckets, bucket, [M(1, 43), M(8, 50)], RepeatStatistic.Min);
        Assert.Equal(1, steady.StepMs!.Value, 9);
        Assert.Null(steady.Warning);
    }

    [Fact]
    public void A_bucket_without_a_usable_pair_says_why()
    {
        var buckets = new BucketSet([8], [8, 16]);
        var fit = BucketFitter.FitBucket(buckets, BucketId.Parse("decode-16"), [new MeasuredRequest(8, 5, 50)], RepeatStatistic.Min);
        Assert.False(fit.IsComplete);
        Assert.Equal("needs two requests with the same prompt length and different output lengths", fit.Warning);
        var model = BucketFitter.Fit(buckets, [], RepeatStatistic.Min);
        Assert.Equal(["prefill-8", "decode-8", "decode-16"], model.Unfitted.Select(b => b.ToString()));
    }

    [Fact]
    public void Plateau_spread_compares_both_ends_of_a_prefill_bucket()
    {
        var buckets = new BucketSet([64, 128, 256], [256, 512]);
        var device = Synthetic.Random(buckets, 1);
        var measurements = device.Measure(ProfilingPlanner.Create(buckets).Rows).Select(m =>
            m.Bucket == BucketId.Parse("prefill-128") && m.InputLength == 128 ? m with { E2eMs = m.E2eMs * 1.1 } : m).ToArray();
        var model = BucketFitter.Fit(buckets, measurements, RepeatStatistic.Min);
        Assert.Equal(0.1 / 1.05, model.PrefillBuckets[1].PlateauSpread, 9);
        Assert.True(double.IsNaN(model.PrefillBuckets[0].PlateauSpread));
    }

    [Fact]
    public void Measured_ttft_is_used_for_ttft_when_present()
    {
        var buckets = new BucketSet([8], [8, 16]);
        var device = Synthetic.Random(buckets, 2);
        var rows = device.Measure(ProfilingPlanner.Create(buckets).Rows).Select(m => m with { TtftMs = device.Ttft(m.InputLength) * 0.9 });
        var model = BucketFitter.Fit(buckets, rows, RepeatStatistic.Min);
        var p = model.Predict(3, 5);
        Assert.Equal(device.Ttft(3) * 0.9, p.TtftMs, 9);
        Assert.Equal(device.E2e(3, 5), p.E2eMs, 9);
        Assert.Equal((p.E2eMs - p.TtftMs) / 4, p.TpotMs, 9);
    }

    [Fact]
    public void Predicted_ttft_never_exceeds_a_prefill_only_request()
    {
        var model = new DeploymentModel(new BucketSet([8], [8, 16]), [new PrefillValues(8, 10, 0, 10.5, 0, double.NaN)],
            [new DecodeValues(8, 1, 0), new DecodeValues(16, 1, 0)], RepeatStatistic.Min, 0);
        Assert.Equal(10, model.Predict(4, 1).TtftMs);
        Assert.Equal(10, model.Predict(4, 1).E2eMs);
    }

    [Fact]
    public void Statistics_reduce_repeats_as_named()
    {
        double[] v = [5, 1, 4, 2, 3];
        Assert.Equal(1, RepeatStatistic.Min.Reduce(v.ToArray()));
        Assert.Equal(3, RepeatStatistic.Median.Reduce(v.ToArray()));
        Assert.Equal(3, RepeatStatistic.Mean.Reduce(v.ToArray()));
        Assert.Equal(1.4, RepeatStatistic.Parse("p10").Reduce(v.ToArray()), 12);
        Assert.Equal("p10", RepeatStatistic.Parse("P10").ToString());
        Assert.Equal(RepeatStatistic.Min, RepeatStatistic.Parse("p0"));
        Assert.Throws<FormatException>(() => RepeatStatistic.Parse("p101"));
        Assert.Throws<FormatException>(() => RepeatStatistic.Parse("fastest"));
    }
}
