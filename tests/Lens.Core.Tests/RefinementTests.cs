namespace Lens.Core.Tests;

public class RefinementTests
{
    private static readonly BucketSet Buckets = BucketPresets.NxdInference(1024, 2048);

    [Fact]
    public void Observations_pull_a_poorly_profiled_model_toward_the_device()
    {
        var device = Synthetic.Random(Buckets, 6);
        var rng = new Random(9);
        var plan = ProfilingPlanner.Create(Buckets, new PlanOptions(Repeats: 2, Seed: 1));
        var rough = BucketFitter.Fit(Buckets, device.Measure(plan.Rows, () => (rng.NextDouble() - 0.5) * 0.2), RepeatStatistic.Mean);
        var observations = Enumerable.Range(0, 400).Select(_ =>
        {
            var i = rng.Next(1, 1025);
            var o = rng.Next(1, 2048 - i + 1);
            return new Observation(i, o, device.E2e(i, o) * (1 + ((rng.NextDouble() - 0.5) * 0.04)));
        }).ToArray();
        var refined = ModelRefinement.Refine(rough, observations, observationNoise: 0.02);

        double Mape(DeploymentModel model)
        {
            var check = new Random(77);
            return Enumerable.Range(0, 300).Average(_ =>
            {
                var i = check.Next(1, 1025);
                var o = check.Next(1, 2048 - i + 1);
                return Metrics.Ape(model.Predict(i, o).E2eMs, device.E2e(i, o));
            });
        }

        Assert.True(Mape(refined) < Mape(rough) / 2, $"refined {Mape(refined):F2}% vs profiled {Mape(rough):F2}%");
    }

    [Fact]
    public void Without_observations_the_model_is_unchanged()
    {
        var device = Synthetic.Random(Buckets, 6);
        var model = BucketFitter.Fit(Buckets, device.Measure(ProfilingPlanner.Create(Buckets).Rows), RepeatStatistic.Min);
        Assert.Same(model, ModelRefinement.Refine(model, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelRefinement.Refine(model, [], 0));
    }
}
