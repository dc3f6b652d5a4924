namespace Lens.Core.Tests;

/// <summary>
/// The linear-time fit paths against hand-computed values and against the general QR solver they replace. Their speed on a
/// million rows is shown by tests/Lens.Benchmarks (FitBenchmarks).
/// </summary>
public class LinearFitTests
{
    [Fact]
    public void Ttft_estimates_are_the_statistic_of_the_repeats_with_the_standard_error_of_their_mean()
    {
        // Prompt 4: TTFT 2, 4, 9 (mean 5, sample variance (9 + 1 + 16) / 2 = 13); prompt 6: one value, no spread.
        var buckets = new BucketSet([8], [8, 16]);
        MeasuredRequest[] rows =
        [
            new(4, 1, 10, 9), new(4, 1, 10, 2), new(4, 1, 10, 4),
            new(6, 1, 12, 7),
        ];

        foreach (var (statistic, expected) in new[] { (RepeatStatistic.Min, 2.0), (RepeatStatistic.Median, 4.0), (RepeatStatistic.Mean, 5.0) })
        {
            var fit = BucketFitter.FitBucket(buckets, new BucketId(BucketKind.Prefill, 8), rows, statistic);

            Assert.Equal(2, fit.TtftEstimates.Count);
            Assert.Equal(4, fit.TtftEstimates[0].InputLength);
            Assert.Equal(expected, fit.TtftEstimates[0].ValueMs, 12);
            Assert.Equal(Math.Sqrt(13.0 / 3), fit.TtftEstimates[0].StandardError, 12);
            Assert.Equal(new LengthEstimate(6, 7, 0), fit.TtftEstimates[1]);
        }
    }

    [Fact]
    public void A_decode_fit_with_many_prompt_lengths_matches_the_hand_computed_line()
    {
        // Decode bucket 16 (after-append): prompts 9 and 10, each with O = 2 and O = 6 (steps 10..15 stay in the bucket).
        // E2E = c_I + (O - 1) * 0.5 with c_9 = 20, c_10 = 21; unweighted (single repeats), exact data: residuals 0.
        var buckets = new BucketSet([8, 16], [8, 16]);
        MeasuredRequest[] rows = [new(9, 2, 20.5), new(9, 6, 22.5), new(10, 2, 21.5), new(10, 6, 23.5)];

        var fit = BucketFitter.FitBucket(buckets, new BucketId(BucketKind.Decode, 16), rows, RepeatStatistic.Min);

        Assert.Equal(0.5, fit.StepMs!.Value, 12);
        Assert.Equal(0, fit.StepStandardError, 12);
        Assert.Equal([9, 10], fit.PrefillEstimates.Select(e => e.InputLength));
        Assert.Equal(20, fit.PrefillEstimates[0].ValueMs, 12);
        Assert.Equal(21, fit.PrefillEstimates[1].ValueMs, 12);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_shared_slope_solver_agrees_with_QR_on_the_indicator_design(bool weighted)
    {
        var rng = new Random(weighted ? 3 : 4);
        const int groups = 7;
        var group = new List<int>();
        var x = new List<double>();
        var y = new List<double>();
        var v = new List<double>();
        for (var g = 0; g < groups; g++)
        {
            var count = rng.Next(2, 6);
            for (var n = 0; n < count; n++)
            {
                group.Add(g);
                x.Add(n * 3 + rng.Next(3));
                y.Add(10 + g + (0.7 * x[^1]) + (rng.NextDouble() - 0.5));
                v.Add(weighted ? 0.01 + rng.NextDouble() : 0);
            }
        }

        var design = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(group.Count, groups + 1);
        for (var r = 0; r < group.Count; r++)
        {
            design[r, group[r]] = 1;
            design[r, groups] = x[r];
        }

        var qr = WeightedLeastSquares.Solve(design, MathNet.Numerics.LinearAlgebra.Vector<double>.Build.DenseOfEnumerable(y),
            MathNet.Numerics.LinearAlgebra.Vector<double>.Build.DenseOfEnumerable(v));
        var closed = SharedSlopeLeastSquares.Solve([.. group], [.. x], [.. y], [.. v], groups);

        Assert.Equal(qr.DegreesOfFreedom, closed.DegreesOfFreedom);
        for (var k = 0; k <= groups; k++)
        {
            Assert.Equal(qr.Coefficients[k], closed.Coefficients[k], 9);
            Assert.Equal(qr.StandardErrors[k], closed.StandardErrors[k], 9);
        }
    }

    [Fact]
    public void A_slope_below_the_least_allowed_is_held_there_with_the_intercepts_best_for_it()
    {
        // Group 0: (0, 10), (2, 6); group 1: (0, 20), (2, 18). Free slope -1.5; held at 0 the intercepts are the groups' means.
        var free = SharedSlopeLeastSquares.Solve([0, 0, 1, 1], [0, 2, 0, 2], [10, 6, 20, 18], [0, 0, 0, 0], 2);
        Assert.Equal(-1.5, free.Coefficients[2], 12);
        var held = SharedSlopeLeastSquares.Solve([0, 0, 1, 1], [0, 2, 0, 2], [10, 6, 20, 18], [0, 0, 0, 0], 2, minSlope: 0);
        Assert.Equal([8.0, 19.0, 0.0], held.Coefficients.Select(c => Math.Round(c, 12)));
    }

    [Fact]
    public void The_shared_slope_solver_refuses_a_slope_no_group_determines()
    {
        var e = Assert.Throws<ArgumentException>(() => SharedSlopeLeastSquares.Solve([0, 1, 1], [2, 3, 3], [1, 2, 2], [0, 0, 0], 2));
        Assert.Contains("slope is not determined", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Untagged_rows_are_placed_as_before_when_many_outputs_share_a_prompt()
    {
        // One prompt (I = 4), decode buckets 8, 16, 32, after-append: O = 5 ends exactly on edge 8 and O = 9 ends inside 16, so the
        // short request profiles 16 (a beyond-the-prompt pair); O = 1 joins bucket 8's pair, as O = 5 keeps every step inside 8,
        // and without such a request it is its prefill bucket's own row.
        var buckets = new BucketSet([4], [8, 16, 32]);
        MeasuredRequest[] rows = [new(4, 1, 5), new(4, 5, 9), new(4, 9, 13), new(4, 20, 24)];

        var assigned = MeasurementTagger.Assign(buckets, rows);

        Assert.Equal(
            [new BucketId(BucketKind.Decode, 8), new BucketId(BucketKind.Decode, 16), new BucketId(BucketKind.Decode, 16),
                new BucketId(BucketKind.Decode, 32)],
            assigned);
        Assert.Equal(new BucketId(BucketKind.Prefill, 4), MeasurementTagger.Infer(buckets, rows[0], [9, 20]));
    }
}
