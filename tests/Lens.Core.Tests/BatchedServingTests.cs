namespace Lens.Core.Tests;

public class BatchedServingTests
{
    // P = 64; D = 64, 128; B = 1, 2, 4. A = 10; S[b, d] = b + d / 64 (1: 2, 3; 2: 3, 4; 4: 5, 6).
    private static readonly BucketSet Buckets = new([64], [64, 128], DecodeConvention.AfterAppend, [1, 2, 4]);

    private static readonly DeploymentModel Model = TrueModel(Buckets, (b, d) => b + (d / 64.0), _ => 10);

    [Fact]
    public void Bucket_ids_carry_the_batch_and_keep_batch_1_names()
    {
        Assert.Equal("decode-128", new BucketId(BucketKind.Decode, 128).ToString());
        Assert.Equal("decode-128-b8", new BucketId(BucketKind.Decode, 128, 8).ToString());
        Assert.Equal(new BucketId(BucketKind.Decode, 128, 8), BucketId.Parse("decode-128-b8"));
        Assert.Equal(new BucketId(BucketKind.Decode, 128), BucketId.Parse("decode-128"));
        Assert.False(BucketId.TryParse("prefill-128-b2", out _));   // prefill runs at context batch 1
        Assert.False(BucketId.TryParse("decode-128-b0", out _));
        Assert.False(BucketId.TryParse("decode-128-b", out _));
        Assert.True(Buckets.Contains(new BucketId(BucketKind.Decode, 64, 4)));
        Assert.False(Buckets.Contains(new BucketId(BucketKind.Decode, 64, 3)));
        Assert.Equal(1 + (2 * 3), Buckets.AllBuckets().Count());
        Assert.Throws<BucketSetException>(() => new BucketSet([64], [64], DecodeConvention.AfterAppend, [4, 2]));
    }

    [Fact]
    public void Two_requests_at_once_prefill_in_turn_then_decode_together_at_batch_2()
    {
        // Both arrive at 0: prefills 0-10 and 10-20 (TTFT 10 and 20), then decode at B = 2. Request 0 (I = 5, O = 3) needs 2 steps,
        // request 1 (I = 5, O = 6) needs 5: steps at lengths 6.. stay in decode-64, S[2, 64] = 3. After 2 steps (t = 26) request 0
        // leaves; request 1 runs 3 more at B = 1, S[1, 64] = 2: ends at 32.
        var run = ServingSimulation.Simulate(Model, [new TraceRequest(0, 5, 3), new TraceRequest(0, 5, 6)]);
        Assert.Equal(10, run.Requests[0].TtftMs, 9);
        Assert.Equal(20, run.Requests[1].TtftMs, 9);
        Assert.Equal(26, run.Requests[0].E2eMs, 9);
        Assert.Equal(32, run.Requests[1].E2eMs, 9);
        Assert.Equal((26 - 10) / 2.0, run.Requests[0].TpotMs, 9); // the user's TPOT includes the other's prefill
        Assert.Equal(5, run.DecodeSteps);
    }

    [Fact]
    public void A_step_pads_to_the_batch_bucket_and_runs_at_the_longest_sequences_bucket()
    {
        // Three requests: B = bat(3) = 4. The longest (I = 60) crosses into decode-128 at its 5th step, so every row pays S[4, 128] = 6.
        var run = ServingSimulation.Simulate(Model, [new TraceRequest(0, 60, 9), new TraceRequest(0, 1, 9), new TraceRequest(0, 1, 9)]);
        // Prefills end at 30; steps 1..4 at lengths 61..64 cost 5 each, steps 5..8 at 65..68 cost 6 each: 30 + 20 + 24 = 74.
        Assert.All(run.Requests, r => Assert.Equal(74, r.FinishMs, 9));
    }

    [Fact]
    public void A_group_released_at_once_ends_together_at_b_times_A_plus_its_steps()
    {
        // The fit's equation for a profiling group (method.md, "Batched serving"): E2E = b * A + (O - 1) * S[b, d].
        foreach (var b in new[] { 1, 2, 4 })
        {
            var run = ServingSimulation.StaticBatch(Model, [.. Enumerable.Repeat(new RequestPair(1, 40), b)]);
            var expected = (b * 10) + (39 * (b + 1.0)); // steps at lengths 2..40: decode-64
            Assert.All(run.Requests, r => Assert.Equal(expected, r.E2eMs, 9));
            Assert.Equal(Enumerable.Range(1, b).Select(k => k * 10.0), run.Requests.Select(r => r.TtftMs));
        }
    }

    [Fact]
    public void Max_num_seqs_bounds_the_batch_and_the_rest_wait_first_come_first_served()
    {
        var trace = Enumerable.Range(0, 6).Select(k => new TraceRequest(k * 0.001, 5, 20)).ToArray();
        var two = ServingSimulation.Simulate(Model, trace, maxNumSeqs: 2);
        var starts = two.Requests.Select(r => r.StartMs).ToArray();
        Assert.Equal(starts.Order(), starts);                                   // FCFS
        Assert.True(two.Requests[2].StartMs >= two.Requests[0].FinishMs - 1e-9); // the third waits for a free slot
        Assert.Throws<ArgumentOutOfRangeException>(() => ServingSimulation.Simulate(Model, trace, maxNumSeqs: 5));
        var error = Assert.Throws<RequestOutOfRangeException>(() => ServingSimulation.Simulate(Model, [trace[0], new TraceRequest(0, 100, 2)]));
        Assert.Contains("trace row 2", error.Message);
        Assert.Throws<ArgumentException>(() => ServingSimulation.Simulate(Model, []));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Jumping_over_identical_steps_matches_the_step_by_step_definition(int seed)
    {
        var rng = new Random(seed);
        var buckets = Synthetic.RandomBuckets(rng, seed % 2 == 0 ? DecodeConvention.AfterAppend : DecodeConvention.BeforeAppend)
            .WithBatch(seed % 3 == 0 ? [1] : [1, 2, 4, 8]);
        var model = TrueModel(buckets, (b, d) => 0.5 + (0.3 * b) + (d * 0.002) + rng.NextDouble(), p => 3 + (p * 0.01));
        var replicas = 1 + (seed % 2);
        var trace = new Workload { RequestsPerSecond = 40, Count = 400, Seed = seed, MaxOutput = 60 }.Generate(buckets).Requests;
        var fast = ServingSimulation.Simulate(model, trace, replicas: replicas);
        var slow = SharedQueueTests.Reference(model, trace, buckets.MaxBatch, replicas);
        for (var k = 0; k < trace.Count; k++)
        {
            Assert.Equal(slow.First[k], fast.Requests[k].FirstTokenMs, 6);
            Assert.Equal(slow.Finish[k], fast.Requests[k].FinishMs, 6);
        }
    }

    [Fact]
    public void Fitting_a_profile_of_groups_recovers_every_batch_buckets_step_cost()
    {
        var truth = TrueModel(Buckets, (b, d) => (1.5 * b) + (d / 50.0), p => 7);
        var plan = ProfilingPlanner.Create(Buckets, new PlanOptions(Repeats: 2));
        Assert.Contains(plan.Rows, r => r.Batch == 4 && r.Bucket == new BucketId(BucketKind.Decode, 128, 4));
        long group = 0;
        var measurements = new List<MeasuredRequest>();
        foreach (var row in plan.Rows)
        {
            // Each plan point is a group of `batch` identical requests, timed from its release; one row per request.
            var run = ServingSimulation.StaticBatch(truth, [.. Enumerable.Repeat(new RequestPair(row.InputLength, row.OutputLength), row.Batch)]);
            measurements.AddRange(run.Requests.Select(r =>
                new MeasuredRequest(row.InputLength, row.OutputLength, r.E2eMs, r.TtftMs, row.Bucket, row.Batch, group)));
            group++;
        }

        var model = BucketFitter.Fit(Buckets, measurements, RepeatStatistic.Min);
        Assert.True(model.IsComplete);
        for (var b = 0; b < Buckets.Batch.Length; b++)
        {
            for (var d = 0; d < Buckets.Decode.Length; d++)
            {
                Assert.Equal(truth.StepMs(b, d), model.StepMs(b, d), 9);
            }
        }

        Assert.Equal(7, model.PrefillMs(0), 9);
        Assert.Equal(7, model.TtftMs(0), 9);
    }

    [Fact]
    public void Plans_cost_one_pass_per_batch_bucket_and_write_their_batch_column()
    {
        var plan = ProfilingPlanner.Create(Buckets);
        Assert.Equal(3 * 128, plan.Cost.DecodeWidth);
        Assert.InRange(plan.Cost.StepsPerWidth(1), 0.9, 1.2);
        Assert.Equal(plan.Rows.Sum(r => r.Batch), plan.Cost.Requests);
        var text = new StringWriter();
        LensCsv.WritePlan(text, [.. plan.Rows]);
        Assert.StartsWith(LensCsv.BatchedPlanHeader, text.ToString());
        var back = LensCsv.ReadPlan(new StringReader(text.ToString()), "plan.csv").Rows;
        Assert.Equal(plan.Rows, back);

        var single = new StringWriter();
        LensCsv.WritePlan(single, [.. ProfilingPlanner.Create(Buckets.WithBatch(null)).Rows]);
        Assert.StartsWith(LensCsv.PlanHeader + Environment.NewLine, single.ToString());
    }

    [Fact]
    public void Grouped_measurements_round_trip_through_csv_and_a_wrong_batch_is_named()
    {
        var rows = new[]
        {
            new MeasuredRequest(65, 40, 123.5, 20.25, new BucketId(BucketKind.Decode, 128, 4), 4, 17),
            new MeasuredRequest(65, 1, 40.5, 10.5, null, 2, 3),
        };
        var text = new StringWriter();
        LensCsv.WriteMeasurements(text, rows);
        Assert.Equal(rows, LensCsv.ReadMeasurements(new StringReader(text.ToString()), "m.csv").Rows);

        var bad = Assert.Throws<CsvFormatException>(() => LensCsv.ReadMeasurements(
            new StringReader("bucket,input_len,output_len,batch,e2e_ms\ndecode-128-b4,65,40,2,100\n"), "m.csv"));
        Assert.Equal(2, bad.Line);
        Assert.Equal("batch", bad.Column);
        var notABucket = Assert.Throws<ArgumentException>(() => MeasurementTagger.Assign(Buckets, [new MeasuredRequest(5, 3, 10, Batch: 3)]));
        Assert.Contains("group of 3", notABucket.Message);
    }

    [Fact]
    public void Model_files_keep_version_1_without_batches_and_round_trip_with_them()
    {
        var json = ModelJson.Serialize(Model);
        Assert.Contains("\"version\": 2", json);
        Assert.Contains("\"batchBuckets\"", json);
        var back = ModelJson.Deserialize(json, "model.json");
        Assert.Equal(Model.Buckets, back.Buckets);
        Assert.Equal(Model.StepMs(2, 1), back.StepMs(2, 1));

        var single = ModelJson.Serialize(TrueModel(Buckets.WithBatch(null), (b, d) => d / 64.0, _ => 10));
        Assert.Contains("\"version\": 1", single);
        Assert.DoesNotContain("batch", single, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>A noiseless model with the given step and prefill costs.</summary>
    private static DeploymentModel TrueModel(BucketSet buckets, Func<int, int, double> step, Func<int, double> prefill) =>
        new(buckets, [.. buckets.Prefill.Select(p => new PrefillValues(p, prefill(p), 0, double.NaN, 0, double.NaN))],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, step(b, d), 0, b)))], RepeatStatistic.Min, 0);
}
