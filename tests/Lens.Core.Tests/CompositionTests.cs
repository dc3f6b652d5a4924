namespace Lens.Core.Tests;

public class CompositionTests
{
    // P = {4, 8}, D = {4, 8, 16}; A = {10, 20}; S = {1, 2, 3}.
    private static DeploymentModel Hand(DecodeConvention convention = DecodeConvention.AfterAppend) =>
        new(new BucketSet([4, 8], [4, 8, 16], convention),
            [new PrefillValues(4, 10, 0, double.NaN, 0, double.NaN), new PrefillValues(8, 20, 0, double.NaN, 0, double.NaN)],
            [new DecodeValues(4, 1, 0), new DecodeValues(8, 2, 0), new DecodeValues(16, 3, 0)],
            RepeatStatistic.Min, 0);

    [Theory]
    [InlineData(3, 1, 10)]             // prefill only
    [InlineData(4, 1, 10)]             // prefill bucket edge: 4 is still bucket 4
    [InlineData(5, 1, 20)]             // one past the edge
    [InlineData(3, 2, 11)]             // step 1 at length 4: bucket 4
    [InlineData(3, 4, 15)]             // lengths 4, 5, 6: 1 + 2 + 2
    [InlineData(5, 10, 44)]            // lengths 6..14: 3 x 2 + 6 x 3
    [InlineData(1, 15, 10 + 3 + 8 + 21)] // lengths 2..15 across all three buckets
    [InlineData(8, 8, 20 + 21)]        // lengths 9..15: 7 x 3, I + O = 16
    public void Hand_computed_compositions(int input, int output, double e2e)
    {
        var p = Hand().Predict(input, output);
        Assert.Equal(e2e, p.E2eMs, 12);
        Assert.Equal(input <= 4 ? 10 : 20, p.TtftMs);
        if (output > 1)
        {
            Assert.Equal((e2e - p.TtftMs) / (output - 1), p.TpotMs, 12);
        }
        else
        {
            Assert.True(double.IsNaN(p.TpotMs));
        }
    }

    [Theory]
    [InlineData(3, 4, 14)]  // lengths 3, 4, 5 -> 1 + 1 + 2
    [InlineData(4, 5, 10 + 1 + 2 + 2 + 2)]
    public void One_token_convention_shifts_the_step_lengths(int input, int output, double e2e) =>
        Assert.Equal(e2e, Hand(DecodeConvention.BeforeAppend).Predict(input, output).E2eMs, 12);

    [Fact]
    public void Breakdown_lists_each_touched_bucket_with_its_steps()
    {
        var shares = Hand().Breakdown(3, 10); // lengths 4..12
        Assert.Equal(
            [
                new BucketShare(BucketId.Parse("prefill-4"), 1, 10),
                new BucketShare(BucketId.Parse("decode-4"), 1, 1),
                new BucketShare(BucketId.Parse("decode-8"), 4, 8),
                new BucketShare(BucketId.Parse("decode-16"), 4, 12),
            ],
            shares);
        Assert.Equal(Hand().Predict(3, 10).E2eMs, shares.Sum(s => s.Ms), 12);
    }

    [Fact]
    public void Composition_equals_the_naive_per_step_sum_for_random_bucket_sets()
    {
        var rng = new Random(20261126);
        for (var trial = 0; trial < 300; trial++)
        {
            var convention = rng.Next(2) == 0 ? DecodeConvention.AfterAppend : DecodeConvention.BeforeAppend;
            var buckets = Synthetic.RandomBuckets(rng, convention);
            var device = Synthetic.Random(buckets, trial);
            var model = Model(device);
            for (var q = 0; q < 40; q++)
            {
                var input = rng.Next(1, Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1) + 1);
                var output = rng.Next(1, buckets.MaxSequence - input + 1);
                Assert.Equal(device.E2e(input, output), model.Predict(input, output).E2eMs, tolerance: 1e-9 * device.E2e(input, output));
            }
        }
    }

    [Fact]
    public void Batch_prediction_equals_single_predictions_and_validates_first()
    {
        var model = Hand();
        int[] inputs = [1, 3, 5, 8];
        int[] outputs = [15, 4, 10, 8];
        var results = new Prediction[4];
        model.PredictMany(inputs, outputs, results);
        for (var n = 0; n < inputs.Length; n++)
        {
            Assert.Equal(model.Predict(inputs[n], outputs[n]), results[n]);
        }

        var untouched = new Prediction[2];
        var ex = Assert.Throws<RequestOutOfRangeException>(() => model.PredictMany([3, 9], [1, 1], untouched));
        Assert.Equal("request #1: input length 9 is above the longest prefill bucket 8 (allowed 1..8)", ex.Message);
        Assert.Equal(default, untouched[0]);
        Assert.Throws<ArgumentException>(() => model.PredictMany([1, 2], [1], untouched));
    }

    [Fact]
    public void Unfitted_buckets_are_named_when_a_request_needs_them()
    {
        var model = new DeploymentModel(new BucketSet([4, 8], [4, 8, 16]),
            [new PrefillValues(4, 10, 0, double.NaN, 0, double.NaN), new PrefillValues(8, double.NaN, 0, double.NaN, 0, double.NaN)],
            [new DecodeValues(4, 1, 0), new DecodeValues(8, double.NaN, 0), new DecodeValues(16, 3, 0)],
            RepeatStatistic.Min, 0);
        Assert.Equal(11, model.Predict(3, 2).E2eMs);  // touches only fitted buckets
        Assert.Equal(BucketId.Parse("decode-8"), Assert.Throws<UnfittedBucketException>(() => model.Predict(3, 3)).Bucket);
        Assert.Equal(BucketId.Parse("prefill-8"), Assert.Throws<UnfittedBucketException>(() => model.Predict(6, 1)).Bucket);
        Assert.False(model.IsComplete);
        Assert.Equal(["prefill-8", "decode-8"], model.Unfitted.Select(b => b.ToString()));
    }

    [Fact]
    public void Prediction_interval_widens_with_the_step_standard_errors()
    {
        var model = new DeploymentModel(new BucketSet([4], [4, 8]),
            [new PrefillValues(4, 10, 0.3, double.NaN, 0, double.NaN)],
            [new DecodeValues(4, 1, 0.1), new DecodeValues(8, 2, 0.2)], RepeatStatistic.Min, 0);
        var p = model.Predict(2, 6); // lengths 3, 4 in bucket 4; 5, 6, 7 in bucket 8
        var sd = Math.Sqrt((0.3 * 0.3) + (2 * 2 * 0.01) + (3 * 3 * 0.04));
        Assert.Equal(10 + 2 + 6, p.E2eMs, 12);
        Assert.Equal(p.E2eMs - (1.959963984540054 * sd), p.E2eLowMs, 9);
        Assert.Equal(p.E2eMs + (1.959963984540054 * sd), p.E2eHighMs, 9);
    }

    internal static DeploymentModel Model(Synthetic device)
    {
        var plan = ProfilingPlanner.Create(device.Buckets);
        return BucketFitter.Fit(device.Buckets, device.Measure(plan.Rows), RepeatStatistic.Min);
    }
}
