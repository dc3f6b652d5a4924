using System.Text.Json;

namespace Lens.Core.Tests;

public class HealthHistoryTests
{
    private static readonly BucketSet Buckets = BucketPresets.NxdInference(1024, 2048);
    private static readonly DateTimeOffset At = new(2026, 12, 3, 18, 0, 0, TimeSpan.FromHours(2));

    [Fact]
    public void An_entry_holds_each_bucket_s_figures_in_bucket_order_rounded_with_untouched_buckets_null()
    {
        var device = Synthetic.Random(Buckets, 4);
        var model = BucketFitter.Fit(Buckets, device.Measure(ProfilingPlanner.Create(Buckets).Rows), RepeatStatistic.Min);
        var rng = new Random(3);
        var step = model.DecodeBuckets[Buckets.DecodeIndex(1024)].StepMs;
        // Short prompts only (prefill-128), decode-1024 runs 30% slower.
        var window = Enumerable.Range(0, 300).Select(_ =>
        {
            var (i, o) = (rng.Next(1, 129), rng.Next(1, 1000));
            var extra = 0.3 * step * Math.Max(0, Math.Min(i + o - 1, 1024) - Math.Max(i + 1, 513) + 1);
            return new Observation(i, o, (device.E2e(i, o) + extra) * (1 + 0.02 * rng.NextDouble()));
        }).ToArray();
        var report = DriftAnalysis.Analyze(model, window);
        var n = report.Buckets.Count;
        var counts = report.Buckets.Select(b => b.Drifting ? 2 : 0).ToArray();
        var stale = report.Buckets.Select(b => b.Bucket.ToString() == "decode-2048").ToArray();

        var entry = HealthHistory.Sample(At, report, counts, stale);

        Assert.Equal(new DateTimeOffset(2026, 12, 3, 16, 0, 0, TimeSpan.Zero), entry.At);
        Assert.Equal(TimeSpan.Zero, entry.At.Offset);
        Assert.Equal(Math.Round(report.CommonShift, 4), entry.CommonShift);
        Assert.Equal(report.Drifting.Count(), entry.Drifting);
        Assert.Equal(1, entry.Drifting);
        Assert.All(new Array[] { entry.Observations, entry.MeanApe, entry.Shift, entry.Band, entry.ConsecutiveDrift, entry.Stale }, a => Assert.Equal(n, a.Length));
        var slowed = report.Buckets.ToList().FindIndex(b => b.Bucket.ToString() == "decode-1024");
        Assert.Equal(Math.Round(report.Buckets[slowed].Shift, 4), entry.Shift[slowed]);
        Assert.InRange(entry.Shift[slowed]!.Value - entry.CommonShift, 0.2, 0.4);
        Assert.Equal(Math.Round(report.Buckets[slowed].MeanApe, 2), entry.MeanApe[slowed]);
        Assert.Equal(2, entry.ConsecutiveDrift[slowed]);
        var untouched = report.Buckets.ToList().FindIndex(b => b.Bucket.ToString() == "prefill-1024");
        Assert.Equal(0, entry.Observations[untouched]);
        Assert.Null(entry.Shift[untouched]); // never observed: no shift to draw, not a shift of 0
        Assert.Null(entry.MeanApe[untouched]);
        Assert.Equal(Math.Round(report.Buckets[untouched].Band, 4), entry.Band[untouched]);
        Assert.Equal(stale, entry.Stale);
        Assert.Throws<ArgumentException>(() => HealthHistory.Sample(At, report, counts[1..], stale));
    }

    [Fact]
    public void Worst_case_values_are_clamped_and_an_entry_stays_within_the_size_it_is_budgeted()
    {
        static string Json(int buckets)
        {
            var wild = Enumerable.Range(0, buckets).Select(b =>
                new BucketHealth(new BucketId(BucketKind.Decode, b + 1), int.MaxValue, 1e9 + 0.123456, -1e12 - 0.123456, 1, 1e7 + 0.123456, true)).ToArray();
            var entry = HealthHistory.Sample(DateTimeOffset.MaxValue.AddDays(-1), new DriftReport(-1e9 - 0.123456789, wild),
                Enumerable.Repeat(int.MaxValue, buckets).ToArray(), Enumerable.Repeat(false, buckets).ToArray());
            Assert.All(entry.Shift, s => Assert.Equal(-HealthHistory.MaxShift, s));
            Assert.All(entry.Band, s => Assert.Equal(HealthHistory.MaxShift, s));
            Assert.All(entry.MeanApe, s => Assert.Equal(HealthHistory.MaxApe, s));
            return JsonSerializer.Serialize(entry);
        }

        var empty = Json(0).Length;
        var perBucket = (Json(200).Length - empty) / 200.0;
        Assert.True(empty <= HealthHistory.CharsPerEntry, $"entry {empty} chars");
        Assert.True(perBucket <= HealthHistory.CharsPerBucket, $"{perBucket} chars per bucket");
    }

    [Fact]
    public void Capacity_is_the_configured_length_unless_the_worst_case_would_pass_the_state_budget()
    {
        Assert.Equal(288, HealthHistory.Capacity(288, 9));
        Assert.Equal(288, HealthHistory.Capacity(288, 20));
        var large = HealthHistory.Capacity(288, 512); // 256 prefill + 256 decode buckets
        Assert.InRange(large, 1, 287);
        Assert.True((long)large * (HealthHistory.CharsPerEntry + HealthHistory.CharsPerBucket * 512) <= HealthHistory.StateBudgetChars);
        Assert.True((long)(large + 1) * (HealthHistory.CharsPerEntry + HealthHistory.CharsPerBucket * 512) > HealthHistory.StateBudgetChars);
        Assert.Equal(0, HealthHistory.Capacity(288, 256 + 64 * 256)); // the largest deployment a spec allows keeps none
        Assert.True(HealthHistory.StateBudgetChars < 15 * 32 * 1024); // Orleans' Azure Table provider: 15 properties of 32 Ki chars
    }

    [Fact]
    public void The_ring_keeps_the_newest_oldest_first()
    {
        int[] ring = [];
        for (var k = 1; k <= 5; k++)
        {
            ring = HealthHistory.Append(ring, k, capacity: 3);
        }

        Assert.Equal([3, 4, 5], ring);
        Assert.Equal([4, 5], HealthHistory.Newest(ring, 2));
        Assert.Equal([3, 4, 5], HealthHistory.Newest(ring, null));
        Assert.Equal([3, 4, 5], HealthHistory.Newest(ring, 50));
        Assert.Empty(HealthHistory.Newest(ring, 0));
        Assert.Equal([5, 6], HealthHistory.Append(ring, 6, capacity: 2)); // a shorter setting trims at the next analysis
        Assert.Empty(HealthHistory.Append(ring, 6, capacity: 0));
    }
}
