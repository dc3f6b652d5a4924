namespace Lens.Core.Tests;

public class DriftTests
{
    private static readonly BucketSet Buckets = BucketPresets.NxdInference(1024, 2048);

    private static (DeploymentModel Model, Synthetic Device) Fitted()
    {
        var device = Synthetic.Random(Buckets, 4);
        var model = BucketFitter.Fit(Buckets, device.Measure(ProfilingPlanner.Create(Buckets).Rows), RepeatStatistic.Min);
        return (model, device);
    }

    private static List<Observation> Observe(Synthetic device, Random rng, int count, double noise, Func<int, int, double>? extra = null)
    {
        var list = new List<Observation>();
        for (var n = 0; n < count; n++)
        {
            var i = rng.Next(1, 1025);
            var o = rng.Next(1, 2048 - i + 1);
            var e2e = (device.E2e(i, o) + (extra?.Invoke(i, o) ?? 0)) * (1 + (noise * rng.NextDouble()));
            list.Add(new Observation(i, o, e2e));
        }

        return list;
    }

    [Fact]
    public void A_slowed_decode_bucket_and_only_it_is_found()
    {
        var (model, device) = Fitted();
        var rng = new Random(1);
        var j = Buckets.DecodeIndex(1024);
        var step = model.DecodeBuckets[j].StepMs;

        // decode-1024 runs 30% slower: each of a request's steps at lengths 513..1024 costs 0.3 S more.
        var window = Observe(device, rng, 300, 0.03, (i, o) =>
            0.3 * step * Math.Max(0, Math.Min(i + o - 1, 1024) - Math.Max(i + 1, 513) + 1));
        var health = DriftAnalysis.Analyze(model, window);
        Assert.Equal(["decode-1024"], health.Drifting.Select(h => h.Bucket.ToString()));
        var slow = health.Buckets.Single(h => h.Bucket.ToString() == "decode-1024");
        Assert.InRange(slow.Shift, 0.25, 0.36);
    }

    [Fact]
    public void A_stable_device_raises_no_drift_over_many_windows()
    {
        var (model, device) = Fitted();
        var rng = new Random(2);
        for (var w = 0; w < 40; w++)
        {
            var health = DriftAnalysis.Analyze(model, Observe(device, rng, 200, 0.08));
            Assert.Empty(health.Drifting);
            Assert.InRange(health.CommonShift, 0.01, 0.07); // one-sided noise: observations run ~4% above a min-statistic profile
        }
    }

    [Fact]
    public void A_device_wide_slowdown_is_common_shift_not_a_bucket_drift()
    {
        var (model, device) = Fitted();
        var window = Observe(device, new Random(4), 300, 0.02).Select(o => o with { E2eMs = o.E2eMs * 1.2 }).ToList();
        var report = DriftAnalysis.Analyze(model, window);
        Assert.Empty(report.Drifting);
        Assert.InRange(report.CommonShift, 0.19, 0.24);
    }

    [Fact]
    public void Too_few_observations_judge_nothing()
    {
        var (model, device) = Fitted();
        var window = Observe(device, new Random(3), 10, 0, (_, _) => 1000); // everything far slower, but only 10 requests
        Assert.Empty(DriftAnalysis.Analyze(model, window).Drifting);
        Assert.All(DriftAnalysis.Analyze(model, []).Buckets, h => Assert.Equal(0, h.Observations));
    }
}
