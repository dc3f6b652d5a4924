namespace Lens.Core.Tests;

public class CapacityPlannerTests
{
    // One request at a time (batch [1]); A = 10 ms; S = 2 ms in decode-64, 3 in decode-128.
    private static readonly BucketSet Single = new([64], [64, 128], DecodeConvention.AfterAppend);

    private static readonly DeploymentModel Slow = FleetRoutingTests.TrueModel(Single, (_, d) => d / 32.0, _ => 10);

    [Fact]
    public void The_fewest_replicas_is_the_count_whose_one_fewer_fails_on_a_hand_computed_queue()
    {
        // Four requests (I = 5, O = 2) at 0, one slot each: a request holds a replica 10 + 2 = 12 ms. One replica gives TTFT 10, 22,
        // 34, 46; two give 10, 10, 22, 22; four give 10 each.
        var trace = Enumerable.Repeat(new TraceRequest(0, 5, 2), 4).ToArray();
        var candidate = new CapacityCandidate("one-chip", Slow);
        Assert.Equal(2, Plan(candidate, trace, new CapacitySlo(22, 100, 1.0)).Replicas);
        Assert.Equal(1, Plan(candidate, trace, new CapacitySlo(22, 100, 0.5)).Replicas);
        Assert.Equal(4, Plan(candidate, trace, new CapacitySlo(10, 100, 1.0)).Replicas);
        Assert.Equal(0.5, CapacityPlanner.Attainment(candidate, 1, trace, new ServiceObjectives(22, 100), FleetRouting.Shared));
        Assert.Equal(0.75, CapacityPlanner.Attainment(candidate, 3, trace, new ServiceObjectives(10, 100), FleetRouting.Shared));
    }

    [Fact]
    public void Costs_follow_chips_and_price_and_the_cheapest_is_marked_with_ties_broken_by_latency()
    {
        // Two layouts: tp1 (1 chip, A = 10, S = 2) and tp2 (2 chips, A = 5, S = 0.5). 8 requests (I = 5, O = 2) at 0, TTFT <= 11 for
        // all: tp1 needs 8 replicas (a second request on one waits 12 ms), tp2 needs 4 (TTFT 5 and 10.5; with 3, 16): 8 chips each.
        // Equal cost: the lower p90 E2E (tp2: 5.5 and 11 against 12) is cheapest.
        var trace = Enumerable.Repeat(new TraceRequest(0, 5, 2), 8).ToArray();
        var slo = new CapacitySlo(11, 100, 1.0);
        var fast = FleetRoutingTests.TrueModel(Single, (_, d) => d / 128.0, _ => 5);
        var tp1 = new CapacityCandidate("tp1", Slow.WithLayout(new DeploymentLayout(1, "npu", 2.5)));
        var tp2 = new CapacityCandidate("tp2", fast.WithLayout(new DeploymentLayout(2, "npu", 2.5)));
        var plan = CapacityPlanner.Plan([tp1, tp2], trace, slo, new CapacityOptions(Headroom: false));
        Assert.Equal([8, 4], plan.Candidates.Select(c => c.Replicas));
        Assert.Equal([8, 8], plan.Candidates.Select(c => c.Chips));
        Assert.Equal([20.0, 20.0], plan.Candidates.Select(c => c.CostPerHour!.Value));
        Assert.Equal("tp2", plan.Cheapest!.Model);
        Assert.Equal(1, plan.Candidates.Count(c => c.Cheapest));
        // tp1 serves 16 output tokens in 12 ms: 20 per hour / (1333.3 tokens/s x 3600) x 10^6.
        Assert.Equal(20 / (16 / 0.012 * 3600) * 1e6, plan.Candidates[0].CostPerMillionOutputTokens!.Value, 9);

        // A higher price on tp2's chips makes tp1 the cheapest.
        var pricier = new CapacityCandidate("tp2", fast.WithLayout(new DeploymentLayout(2, "npu", 3)));
        Assert.Equal("tp1", CapacityPlanner.Plan([tp1, pricier], trace, slo, new CapacityOptions(Headroom: false)).Cheapest!.Model);

        // Without a price, cost is unknown and the fewest chips win (then latency).
        var plain = CapacityPlanner.Plan([new CapacityCandidate("a", Slow), new CapacityCandidate("b", fast.WithLayout(new DeploymentLayout(2)))],
            trace, slo, new CapacityOptions(Headroom: false));
        Assert.All(plain.Candidates, c => Assert.Null(c.CostPerHour));
        Assert.Equal("b", plain.Cheapest!.Model);
    }

    [Fact]
    public void A_tpot_limit_below_the_step_cost_fails_at_every_count_with_the_reason()
    {
        // Steps cost 2 ms: a TPOT limit of 1.5 ms is out of reach whatever the fleet.
        var trace = new Workload { RequestsPerSecond = 20, Count = 200, Seed = 1, MaxOutput = 30 }.Generate(Single).Requests;
        var plan = CapacityPlanner.Plan([new CapacityCandidate("slow", Slow)], trace, new CapacitySlo(1000, 1.5, 0.9), new CapacityOptions(MaxReplicas: 8));
        var c = Assert.Single(plan.Candidates);
        Assert.False(c.Meets);
        Assert.False(c.Cheapest);
        Assert.Equal(8, c.Replicas);
        Assert.Null(plan.Cheapest);
        Assert.Contains("even 8 replica(s)", c.Reason);
        Assert.Contains("TPOT is the limit", c.Reason);
    }

    [Theory]
    [InlineData(1, FleetRouting.Shared)]
    [InlineData(2, FleetRouting.RoundRobin)]
    [InlineData(3, FleetRouting.LeastOutstanding)]
    [InlineData(4, FleetRouting.Shared)]
    public void Attainment_grows_with_replicas_and_the_plan_is_the_first_count_that_meets(int seed, FleetRouting routing)
    {
        var rng = new Random(seed);
        var buckets = Synthetic.RandomBuckets(rng, DecodeConvention.AfterAppend).WithBatch([1, 2, 4]);
        var model = FleetRoutingTests.TrueModel(buckets, (b, d) => 0.5 + (0.3 * b) + (d * 0.002), p => 3 + (p * 0.01));
        var trace = new Workload { RequestsPerSecond = 400, Count = 2000, Seed = seed, MaxOutput = 40 }.Generate(buckets).Requests;
        var candidate = new CapacityCandidate("m", model);
        var slo = new CapacitySlo(40, 3, 0.9);
        var attainments = Enumerable.Range(1, 24).Select(n => CapacityPlanner.Attainment(candidate, n, trace, slo.Objectives, routing)).ToArray();
        // Attainment grows with the fleet; request by request it may dip by a few requests (a replica that took a late arrival makes it
        // wait where a busier one would not), never by more than a point.
        for (var n = 1; n < attainments.Length; n++)
        {
            Assert.True(attainments[n] >= attainments[n - 1] - 0.01, $"{n + 1} replicas: {attainments[n]} < {attainments[n - 1]} with {n}");
        }

        Assert.True(attainments[^1] - attainments[0] > 0.5);
        var plan = Assert.Single(CapacityPlanner.Plan([candidate], trace, slo, new CapacityOptions(routing, 24)).Candidates);
        Assert.True(plan.Meets, plan.Reason);
        Assert.True(plan.Replicas > 1);
        Assert.True(attainments[plan.Replicas - 1] >= 0.9);
        Assert.True(attainments[plan.Replicas - 2] < 0.9);
        Assert.Equal(attainments[plan.Replicas - 1], plan.Attainment, 12);

        // Headroom: the fleet meets at the headroom's rate and fails 5% above it. (Between, attainment is not monotone in the rate to
        // within a point: seed 4, 15 replicas behind the shared queue, attains 0.9005, 0.891 and 0.8985 at 1.0101, 1.015 and 1.02 times it.)
        var rate = CapacityPlanner.MaxRate(candidate, plan.Replicas, trace, slo, routing);
        Assert.Equal(rate.RequestsPerSecond, plan.HeadroomRequestsPerSecond!.Value, 9);
        Assert.True(rate.Scale >= 1);
        Assert.True(CapacityPlanner.Attainment(candidate, plan.Replicas, CapacityPlanner.Scaled(trace, rate.Scale), slo.Objectives, routing) >= 0.9);
        Assert.True(CapacityPlanner.Attainment(candidate, plan.Replicas, CapacityPlanner.Scaled(trace, rate.Scale * 1.05), slo.Objectives, routing) < 0.9);

        // The inverse from below: one replica fewer meets only a lower rate.
        Assert.True(CapacityPlanner.MaxRate(candidate, plan.Replicas - 1, trace, slo, routing).Scale < 1);
    }

    [Theory]
    [InlineData(1, FleetRouting.Shared)]
    [InlineData(3, FleetRouting.LeastOutstanding)]
    [InlineData(5, FleetRouting.RoundRobin)]
    public void The_headroom_search_gives_plain_bisections_answer_with_fewer_probes(int seed, FleetRouting routing)
    {
        // The search skips plain bisection's first probes above n / (n - 1) for n replicas; whatever n, the answer is the same scale.
        var rng = new Random(seed);
        var buckets = Synthetic.RandomBuckets(rng, DecodeConvention.AfterAppend).WithBatch([1, 2, 4]);
        var model = FleetRoutingTests.TrueModel(buckets, (b, d) => 0.5 + (0.3 * b) + (d * 0.002), p => 3 + (p * 0.01));
        var trace = new Workload { RequestsPerSecond = 400, Count = 1000, Seed = seed, MaxOutput = 40 }.Generate(buckets).Requests;
        var candidate = new CapacityCandidate("m", model);
        var slo = new CapacitySlo(40, 3, 0.9);
        var plan = Assert.Single(CapacityPlanner.Plan([candidate], trace, slo, new CapacityOptions(routing, 24, Headroom: false)).Candidates);
        Assert.True(plan.Meets, plan.Reason);
        var scales = new List<double>();
        // From below the workload's rate, just above it, and far above it (the bracket doubling past 2).
        foreach (var n in new[] { plan.Replicas - 1, plan.Replicas, plan.Replicas + 1, plan.Replicas + 6, plan.Replicas * 5 }.Where(n => n >= 1))
        {
            var rate = CapacityPlanner.MaxRate(candidate, n, trace, slo, routing);
            Assert.Equal(PlainBisection(candidate, n, trace, slo, routing), rate.Scale);
            scales.Add(rate.Scale);
        }

        Assert.Contains(scales, scale => scale < 1);
        Assert.Contains(scales, scale => scale > 2);
    }

    /// <summary>The search as it was: bracket [1, 2] doubled or halved until it straddles the limit, then bisected in the log.</summary>
    private static double PlainBisection(CapacityCandidate candidate, int replicas, IReadOnlyList<TraceRequest> trace, CapacitySlo slo,
        FleetRouting routing)
    {
        bool Meets(double scale) =>
            CapacityPlanner.Attainment(candidate, replicas, CapacityPlanner.Scaled(trace, scale), slo.Objectives, routing) >= slo.Attainment;
        double lo, hi;
        if (Meets(1))
        {
            (lo, hi) = (1, 2);
            while (Meets(hi))
            {
                if (hi >= CapacityPlanner.MaxScale)
                {
                    return hi;
                }

                (lo, hi) = (hi, hi * 2);
            }
        }
        else
        {
            (lo, hi) = (0.5, 1);
            while (!Meets(lo))
            {
                if (lo <= CapacityPlanner.MinScale)
                {
                    return 0;
                }

                (lo, hi) = (lo / 2, lo);
            }
        }

        while (hi / lo > CapacityPlanner.RateTolerance)
        {
            var mid = Math.Sqrt(lo * hi);
            (lo, hi) = Meets(mid) ? (mid, hi) : (lo, mid);
        }

        return lo;
    }

    [Fact]
    public void Bad_inputs_name_the_field_and_its_range()
    {
        var trace = new[] { new TraceRequest(0, 5, 2) };
        var c = new CapacityCandidate("m", Slow);
        Assert.Contains("attainment must be in (0, 1]",
            Assert.Throws<ArgumentOutOfRangeException>(() => CapacityPlanner.Plan([c], trace, new CapacitySlo(10, 10, 1.5))).Message);
        Assert.Contains("maxReplicas must be in 1..4096",
            Assert.Throws<ArgumentOutOfRangeException>(() => CapacityPlanner.Plan([c], trace, new CapacitySlo(10, 10), new CapacityOptions(MaxReplicas: 0))).Message);
        Assert.Contains("m: trace row 1",
            Assert.Throws<RequestOutOfRangeException>(() => CapacityPlanner.Plan([c], [new TraceRequest(0, 100, 100)], new CapacitySlo(10, 10))).Message);
        Assert.Contains("chips 0 is outside 1..4096", Assert.Throws<ArgumentException>(() => Slow.WithLayout(new DeploymentLayout(0))).Message);
    }

    [Fact]
    public void The_layout_round_trips_through_the_model_file_and_old_files_load_as_one_chip_without_price()
    {
        var json = ModelJson.Serialize(Slow);
        Assert.DoesNotContain("chips", json);
        Assert.Equal(DeploymentLayout.Default, ModelJson.Deserialize(json, "m.json").Layout);

        var laid = ModelJson.Serialize(Slow.WithLayout(new DeploymentLayout(4, "trn1", 1.25)));
        Assert.Contains("\"chips\": 4", laid);
        Assert.Contains("\"version\": 1", laid); // older readers ignore the new members
        var back = ModelJson.Deserialize(laid, "m.json");
        Assert.Equal(new DeploymentLayout(4, "trn1", 1.25), back.Layout);
        Assert.Equal(Slow.StepMs(0, 1), back.StepMs(0, 1));

        var bad = Assert.Throws<FormatException>(() => ModelJson.Deserialize(laid.Replace("\"chips\": 4", "\"chips\": -2", StringComparison.Ordinal), "m.json"));
        Assert.Contains("chips -2 is outside 1..4096", bad.Message);
    }

    private static CandidatePlan Plan(CapacityCandidate candidate, TraceRequest[] trace, CapacitySlo slo) =>
        Assert.Single(CapacityPlanner.Plan([candidate], trace, slo, new CapacityOptions(Headroom: false)).Candidates);

    [Fact]
    public void The_planned_trace_of_a_generated_workload_is_drawn_once_and_clamped_into_every_candidates_buckets()
    {
        // One candidate serves prompts up to 512 but sequences up to 600, the other prompts up to 64 and sequences up to 1024: neither
        // alone bounds both, so the draws are clamped into each in turn (prompt <= 64, I + O <= 600).
        var longPrompts = new BucketSet([512], [600]);
        var longSequences = new BucketSet([64], [1024]);
        var workload = new Workload { RequestsPerSecond = 10, Count = 500, Seed = 3, InputDist = "uniform:1-500", OutputDist = "uniform:1-900" };
        var planned = CapacityPlanner.Trace(workload, [longPrompts, longSequences]);
        var drawn = workload.Draw(longPrompts);
        Assert.Equal(drawn.Select(r => r.ArrivalMs), planned.Requests.Select(r => r.ArrivalMs));
        Assert.All(planned.Requests, r =>
        {
            Assert.Null(longPrompts.CheckRequest(r.InputLength, r.OutputLength));
            Assert.Null(longSequences.CheckRequest(r.InputLength, r.OutputLength));
        });
        Assert.Equal(drawn.Zip(planned.Requests).Count(p => p.First != p.Second), planned.Clamped);
        Assert.True(planned.Clamped > 400); // most prompts were above 64
        Assert.Equal((64, 600), (planned.MaxInput, planned.MaxSequence));

        // The same in the other order of candidates; a given trace is kept as it is.
        Assert.Equal(planned.Requests, CapacityPlanner.Trace(workload, [longSequences, longPrompts]).Requests);
        var given = new TraceRequest[] { new(0, 100, 700) };
        Assert.Same(given, CapacityPlanner.Trace(new Workload { Trace = given }, [longPrompts, longSequences]).Requests);
    }
}
