namespace Lens.Core.Tests;

public class PlanTests
{
    [Fact]
    public void Shared_edges_give_exactly_two_rows_per_decode_bucket_and_nothing_else()
    {
        var buckets = BucketPresets.NxdInference(2048, 2048);
        var plan = ProfilingPlanner.Create(buckets);
        Assert.Equal(10, plan.Rows.Count);
        foreach (var d in buckets.Decode)
        {
            var rows = plan.RowsFor(new BucketId(BucketKind.Decode, d)).OrderBy(r => r.OutputLength).ToArray();
            Assert.Equal(2, rows.Length);
            var lower = buckets.DecodeLowerEdge(buckets.DecodeIndex(d));
            Assert.All(rows, r => Assert.Equal(lower + 1, r.InputLength));
            Assert.Equal(1, rows[0].OutputLength);
            Assert.Equal(d - (lower + 1), rows[1].OutputLength);
        }

        Assert.DoesNotContain(plan.Rows, r => r.Bucket.Kind == BucketKind.Prefill);
        Assert.Equal(new PlanCost(10, 2048 - 5 - 5, 2048), plan.Cost); // each bucket: width - 2 steps, plus O = 1 rows
    }

    [Fact]
    public void Every_planned_request_stays_in_its_intended_bucket_for_random_bucket_sets()
    {
        var rng = new Random(7);
        for (var trial = 0; trial < 500; trial++)
        {
            var convention = rng.Next(2) == 0 ? DecodeConvention.AfterAppend : DecodeConvention.BeforeAppend;
            var buckets = Synthetic.RandomBuckets(rng, convention);
            var plan = ProfilingPlanner.Create(buckets, new PlanOptions(Repeats: rng.Next(1, 4), Seed: trial));
            foreach (var row in plan.Rows)
            {
                Assert.Null(buckets.CheckRequest(row.InputLength, row.OutputLength));
            }

            for (var j = 0; j < buckets.Decode.Length; j++)
            {
                var id = new BucketId(BucketKind.Decode, buckets.Decode[j]);
                var rows = plan.RowsFor(id).Where(r => r.Repeat == 0).OrderBy(r => r.OutputLength).ToArray();
                Assert.Equal(2, rows.Length);
                var (shortRow, longRow) = (rows[0], rows[1]);
                Assert.Equal(shortRow.InputLength, longRow.InputLength);
                Assert.True(longRow.InputLength + longRow.OutputLength <= buckets.Decode[j]);

                // The steps the long request has beyond the short one all run in this decode bucket.
                for (var k = shortRow.OutputLength; k <= longRow.OutputLength - 1; k++)
                {
                    Assert.Equal(j, buckets.DecodeIndex(buckets.StepLength(longRow.InputLength, k)));
                }
            }

            // Every prefill bucket is measured: by an intercept pair or by its own rows.
            for (var i = 0; i < buckets.Prefill.Length && buckets.PrefillLowerEdge(i) + 1 < buckets.MaxSequence; i++)
            {
                Assert.Contains(plan.Rows, r => r.OutputLength == 1 && buckets.PrefillIndex(r.InputLength) == i);
            }
        }
    }

    [Fact]
    public void Uncovered_prefill_buckets_get_their_own_measurement_and_a_plateau_check()
    {
        var buckets = new BucketSet([64, 128, 256], [256, 512]);
        var points = ProfilingPlanner.PlanPoints(buckets);
        Assert.Equal(
            [
                new PlanRow(BucketId.Parse("decode-256"), 1, 1, 0, PlanRole.Intercept),
                new PlanRow(BucketId.Parse("decode-256"), 1, 255, 0, PlanRole.Slope),
                new PlanRow(BucketId.Parse("decode-512"), 256, 1, 0, PlanRole.Intercept),
                new PlanRow(BucketId.Parse("decode-512"), 256, 256, 0, PlanRole.Slope),
                new PlanRow(BucketId.Parse("prefill-128"), 65, 1, 0, PlanRole.Prefill),
                new PlanRow(BucketId.Parse("prefill-128"), 128, 1, 0, PlanRole.Prefill),
            ],
            points);
    }

    [Fact]
    public void Buckets_beyond_the_longest_prompt_are_timed_by_difference()
    {
        var buckets = new BucketSet([128], [128, 256, 512]);
        var rows = ProfilingPlanner.PlanPoints(buckets).Where(r => r.Bucket == BucketId.Parse("decode-512")).ToArray();
        Assert.Equal([new PlanRow(BucketId.Parse("decode-512"), 128, 129, 0, PlanRole.Base),
            new PlanRow(BucketId.Parse("decode-512"), 128, 384, 0, PlanRole.Slope)], rows);
    }

    [Fact]
    public void Max_span_caps_the_long_request()
    {
        var buckets = BucketPresets.NxdInference(1024, 1024);
        var plan = ProfilingPlanner.Create(buckets, new PlanOptions(MaxSpan: 50));
        Assert.All(plan.Rows, r => Assert.True(r.OutputLength <= 51));
    }

    [Fact]
    public void Same_inputs_same_plan_and_repeats_are_interleaved_in_rounds()
    {
        var buckets = BucketPresets.NxdInference(1024, 2048);
        var a = ProfilingPlanner.Create(buckets, new PlanOptions(Repeats: 3, Seed: 42));
        var b = ProfilingPlanner.Create(buckets, new PlanOptions(Repeats: 3, Seed: 42));
        var c = ProfilingPlanner.Create(buckets, new PlanOptions(Repeats: 3, Seed: 43));
        Assert.Equal(a.Rows, b.Rows);
        Assert.NotEqual(a.Rows, c.Rows);
        Assert.Equal(a.Rows.OrderBy(r => (r.Bucket.ToString(), r.OutputLength, r.Repeat)), c.Rows.OrderBy(r => (r.Bucket.ToString(), r.OutputLength, r.Repeat)));
        var perRound = a.Rows.Count / 3;
        for (var n = 0; n < a.Rows.Count; n++)
        {
            Assert.Equal(n / perRound, a.Rows[n].Repeat);
        }
    }

    [Theory]
    [InlineData(0, null, "repeats must be in 1..1000; got 0")]
    [InlineData(1, 0, "max span must be at least 1 decode step; got 0")]
    public void Bad_options_are_rejected(int repeats, int? span, string expected) =>
        Assert.Equal(expected, Assert.Throws<PlanException>(() => ProfilingPlanner.Create(new BucketSet([8], [8]), new PlanOptions(repeats, span))).Message);

    [Fact]
    public void A_bucket_too_narrow_to_time_is_named()
    {
        var ex = Assert.Throws<PlanException>(() => ProfilingPlanner.Create(new BucketSet([4], [1, 8])));
        Assert.StartsWith("decode bucket 1 (lengths 1..1) is too narrow", ex.Message);
    }

    [Fact]
    public void A_cell_is_reprofiled_by_its_own_rows_or_a_prefill_bucket_by_the_smallest_batch_pair_whose_intercept_measures_it()
    {
        var buckets = new BucketSet([128, 256, 512], [128, 256, 512, 1024], DecodeConvention.AfterAppend, [1, 2, 4, 8]);
        var plan = ProfilingPlanner.Create(buckets);
        var cell = new BucketId(BucketKind.Decode, 512, 4);
        Assert.Equal(cell, plan.ReprofileTarget(cell));
        Assert.All(plan.RowsFor(cell), r => Assert.Equal(4, r.Batch)); // groups of the cell's batch
        Assert.Equal(new BucketId(BucketKind.Decode, 256), plan.ReprofileTarget(new BucketId(BucketKind.Prefill, 256))); // prompt 129, O = 1
        Assert.Equal(new BucketId(BucketKind.Decode, 128), plan.ReprofileTarget(new BucketId(BucketKind.Prefill, 128)));
        Assert.Null(plan.ReprofileTarget(new BucketId(BucketKind.Decode, 512, 3))); // not a cell of the set

        // Any bucket set: a cell with rows is its own target; a prefill bucket's target has an O = 1 row at the smallest batch bucket
        // with its prompt in that bucket (what the fit takes A from); every prefill bucket a pair covers has one.
        var rng = new Random(11);
        for (var trial = 0; trial < 300; trial++)
        {
            var set = Synthetic.RandomBuckets(rng);
            var p = ProfilingPlanner.Create(set);
            foreach (var id in set.AllBuckets())
            {
                var target = p.ReprofileTarget(id);
                if (p.RowsFor(id).Any())
                {
                    Assert.Equal(id, target);
                }
                else if (target is { } t)
                {
                    Assert.Equal(BucketKind.Prefill, id.Kind);
                    Assert.Contains(p.RowsFor(t), r => r is { OutputLength: 1, Role: PlanRole.Intercept } && r.Batch == set.Batch[0] &&
                                                       set.Prefill[set.PrefillIndex(r.InputLength)] == id.Edge);
                }
                else
                {
                    Assert.DoesNotContain(p.Rows, r => r.Role == PlanRole.Intercept && id.Kind == BucketKind.Prefill &&
                                                       set.Prefill[set.PrefillIndex(r.InputLength)] == id.Edge);
                }
            }
        }
    }
}
