namespace Lens.Core.Tests;

public class EvaluationPlanTests
{
    private static readonly BucketSet Buckets = BucketPresets.NxdInference(1024, 2048);

    [Fact]
    public void Runs_interleave_profile_held_out_twins_and_sweep_in_rounds()
    {
        var plan = EvaluationPlan.Create(Buckets, new EvaluationOptions(HeldOut: 100, Repeats: 3, SweepPoints: 10, Seed: 5));
        Assert.Equal(100, plan.HeldOutPairs.Count);
        Assert.Equal(100, plan.HeldOutPairs.Distinct().Count());
        var perRound = plan.Profile.Rows.Count + 200 + plan.SweepInputs.Count;
        Assert.Equal(perRound * 3, plan.Rows.Count);
        Assert.All(plan.Rows, r => Assert.Null(Buckets.CheckRequest(r.InputLength, r.OutputLength)));
        var firstRound = plan.Rows.Take(perRound).ToArray();
        Assert.Contains(firstRound.Take(perRound / 4), r => r.Role == EvaluationRole.HeldOut); // mixed, not profile first
        Assert.Contains(firstRound.Take(perRound / 4), r => r.Role == EvaluationRole.Profile);
        Assert.Equal(plan.Rows, EvaluationPlan.Create(Buckets, new EvaluationOptions(HeldOut: 100, Repeats: 3, SweepPoints: 10, Seed: 5)).Rows);
    }

    [Fact]
    public void Held_out_pairs_crowd_the_bucket_edges_and_respect_the_output_cap()
    {
        var pairs = EvaluationPlan.HeldOut(Buckets, 400, 300, new Random(1));
        Assert.All(pairs, p => Assert.InRange(p.OutputLength, 1, 300));
        bool NearEdge(RequestPair p) =>
            Buckets.Prefill.Any(e => Math.Abs(p.InputLength - e) <= 3) || Buckets.Decode.Any(e => Math.Abs(p.InputLength + p.OutputLength - 1 - e) <= 3);
        Assert.InRange(pairs.Count(NearEdge), 400 * 0.4, 400 * 0.8);
    }

    [Fact]
    public void Sweep_covers_both_sides_of_every_prefill_edge()
    {
        var sweep = EvaluationPlan.Sweep(Buckets, 8, 16);
        Assert.Contains(128, sweep);
        Assert.Contains(129, sweep);
        Assert.Contains(1, sweep);
        Assert.DoesNotContain(1025, sweep);
    }

    [Fact]
    public void Scoring_a_noiseless_device_gives_zero_error_and_a_zero_noise_floor()
    {
        var device = Synthetic.Random(Buckets, 8);
        var plan = EvaluationPlan.Create(Buckets, new EvaluationOptions(HeldOut: 50, Repeats: 2, SweepPoints: 5, Seed: 2));
        var rows = plan.Rows.Select(r => new MeasuredRow(r, device.E2e(r.InputLength, r.OutputLength), null)).ToArray();
        var score = EvaluationScore.Compute(Buckets, rows, RepeatStatistic.Min);
        Assert.Equal("LENS", score.Evaluations[0].Predictor);
        Assert.True(score.Evaluations[0].E2e.Max < 1e-9);
        Assert.True(score.Evaluations[1].E2e.Mean > 1, "the smooth baseline cannot follow the steps");
        Assert.Equal(0, score.NoiseFloor.E2e.Max);
        Assert.Equal(50, score.NoiseFloor.E2e.Count);
        Assert.Equal(plan.SweepInputs.Count * 2, score.Sweep.Count);
    }
}
