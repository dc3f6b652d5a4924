namespace Lens.Core.Tests;

public class FleetRoutingTests
{
    // P = 64; D = 64, 128; B = 1, 2, 4. A = 10; S[b, d] = b + d / 64 (1: 2, 3; 2: 3, 4; 4: 5, 6).
    private static readonly BucketSet Buckets = new([64], [64, 128], DecodeConvention.AfterAppend, [1, 2, 4]);

    private static readonly DeploymentModel Model = TrueModel(Buckets, (b, d) => b + (d / 64.0), _ => 10);

    [Fact]
    public void Round_robin_sends_the_third_request_to_the_busy_first_replica_while_the_shared_queue_waits_for_a_free_one()
    {
        // One slot per replica. Requests (I = 5, O = 3) at 0, 1, 2: prefill 10, two steps of S[1, 64] = 2: each takes 14 ms alone.
        var trace = new[] { new TraceRequest(0, 5, 3), new TraceRequest(1, 5, 3), new TraceRequest(2, 5, 3) };
        var shared = ServingSimulation.Simulate(Model, trace, maxNumSeqs: 1, replicas: 2);
        var roundRobin = ServingSimulation.Simulate(Model, trace, maxNumSeqs: 1, replicas: 2, routing: FleetRouting.RoundRobin);
        // Shared: replica 0 serves 0 (0-14), replica 1 serves 1 (1-15), request 2 goes to replica 0 when it frees at 14: ends 28.
        Assert.Equal([0, 1, 0], shared.Requests.Select(r => r.Replica));
        Assert.Equal(28, shared.Requests[2].FinishMs, 9);
        // Round-robin: request 2 is queued at replica 0 on arrival, the same here: 14 + 14 = 28.
        Assert.Equal([0, 1, 0], roundRobin.Requests.Select(r => r.Replica));
        Assert.Equal(28, roundRobin.Requests[2].FinishMs, 9);

        // Four requests: 0 (long, O = 40) and 1 (short) at 0; 2 and 3 at 1. Round-robin puts 2 behind the long one on replica 0.
        var uneven = new[] { new TraceRequest(0, 5, 40), new TraceRequest(0, 5, 2), new TraceRequest(1, 5, 2), new TraceRequest(1, 5, 2) };
        var rr = ServingSimulation.Simulate(Model, uneven, maxNumSeqs: 1, replicas: 2, routing: FleetRouting.RoundRobin);
        var least = ServingSimulation.Simulate(Model, uneven, maxNumSeqs: 1, replicas: 2, routing: FleetRouting.LeastOutstanding);
        // Replica 0: request 0 ends at 10 + 39 * 2 = 88; request 2 starts then: 98 + 2 = 100.
        Assert.Equal(0, rr.Requests[2].Replica);
        Assert.Equal(100, rr.Requests[2].FinishMs, 9);
        // Least outstanding at t = 1: replica 0 has 1 (request 0), replica 1 has 1 (request 1, ends at 12): a tie goes to replica 0,
        // then request 3 sees 2 against 1 and goes to replica 1.
        Assert.Equal([0, 1, 0, 1], least.Requests.Select(r => r.Replica));
    }

    [Fact]
    public void Least_outstanding_counts_a_request_that_finished_at_the_arrival_instant_as_finished()
    {
        // One slot each. Request 0 (O = 1) ends at 10 on replica 0; request 1 (O = 1) at 5 goes to replica 1 (0 against 1) and ends at
        // 15; request 2 arrives at exactly 10: replica 0 has none outstanding, replica 1 one: replica 0.
        var trace = new[] { new TraceRequest(0, 5, 1), new TraceRequest(5, 5, 1), new TraceRequest(10, 5, 1) };
        var run = ServingSimulation.Simulate(Model, trace, maxNumSeqs: 1, replicas: 2, routing: FleetRouting.LeastOutstanding);
        Assert.Equal([0, 1, 0], run.Requests.Select(r => r.Replica));
        Assert.Equal(20, run.Requests[2].FinishMs, 9);
    }

    [Fact]
    public void A_request_routed_to_a_replica_in_a_decode_run_is_admitted_at_the_next_step_boundary()
    {
        // Request 0 (I = 5, O = 30) runs alone on replica 0 from 10 with steps of 2. Request 2 arrives at 15 and is routed (round-robin)
        // to replica 0: it is admitted at the boundary 16 (after 3 steps), its prefill runs 16-26: TTFT 11.
        var trace = new[] { new TraceRequest(0, 5, 30), new TraceRequest(0, 5, 2), new TraceRequest(15, 5, 2) };
        var run = ServingSimulation.Simulate(Model, trace, replicas: 2, routing: FleetRouting.RoundRobin);
        Assert.Equal(0, run.Requests[2].Replica);
        Assert.Equal(16, run.Requests[2].StartMs, 9);
        Assert.Equal(11, run.Requests[2].TtftMs, 9);
    }

    [Theory]
    [InlineData(1, FleetRouting.RoundRobin)]
    [InlineData(2, FleetRouting.RoundRobin)]
    [InlineData(3, FleetRouting.LeastOutstanding)]
    [InlineData(4, FleetRouting.LeastOutstanding)]
    [InlineData(5, FleetRouting.LeastOutstanding)]
    [InlineData(6, FleetRouting.RoundRobin)]
    public void Routed_fleets_match_the_step_by_step_definition_on_random_traces(int seed, FleetRouting routing)
    {
        var rng = new Random(seed);
        var buckets = Synthetic.RandomBuckets(rng, seed % 2 == 0 ? DecodeConvention.AfterAppend : DecodeConvention.BeforeAppend)
            .WithBatch(seed % 3 == 0 ? [1] : [1, 2, 4, 8]);
        // Even seeds: costs and arrivals on a coarse grid, so arrivals coincide with step boundaries and with each other (ties).
        var grid = seed % 2 == 0;
        var model = TrueModel(buckets, (b, d) => grid ? 1 + (b / 2.0) + (d % 3) : 0.5 + (0.3 * b) + (d * 0.002) + rng.NextDouble(),
            p => grid ? 4 + (p % 4) : 3 + (p * 0.01));
        var replicas = 2 + (seed % 4);
        var trace = new Workload { RequestsPerSecond = 60, Count = 500, Seed = seed, MaxOutput = 60 }.Generate(buckets).Requests;
        if (grid)
        {
            trace = [.. trace.Select(r => r with { ArrivalMs = Math.Floor(r.ArrivalMs / 4) * 2 })];
        }

        var fast = ServingSimulation.Simulate(model, trace, replicas: replicas, routing: routing);
        var slow = StepByStep(model, trace, buckets.MaxBatch, replicas, routing);
        for (var k = 0; k < trace.Count; k++)
        {
            Assert.Equal(slow[k].Replica, fast.Requests[k].Replica);
            Assert.Equal(slow[k].FirstTokenMs, fast.Requests[k].FirstTokenMs, 6);
            Assert.Equal(slow[k].FinishMs, fast.Requests[k].FinishMs, 6);
        }

        Assert.True(fast.Requests.Select(r => r.Replica).Distinct().Count() > 1);
    }

    [Fact]
    public void Round_robin_is_each_replica_serving_its_share_of_the_trace_alone()
    {
        var rng = new Random(7);
        var buckets = Synthetic.RandomBuckets(rng, DecodeConvention.AfterAppend).WithBatch([1, 2, 4]);
        var model = TrueModel(buckets, (b, d) => 0.4 + (0.2 * b) + (d * 0.003), p => 2 + (p * 0.02));
        var trace = new Workload { RequestsPerSecond = 80, Count = 900, Seed = 7, MaxOutput = 40 }.Generate(buckets).Requests;
        var fleet = ServingSimulation.Simulate(model, trace, replicas: 3, routing: FleetRouting.RoundRobin);
        var order = Enumerable.Range(0, trace.Count).OrderBy(k => trace[k].ArrivalMs).ThenBy(k => k).ToArray();
        for (var r = 0; r < 3; r++)
        {
            var mine = order.Where((_, position) => position % 3 == r).ToArray();
            var alone = ServingSimulation.Simulate(model, [.. mine.Select(k => trace[k])]);
            for (var n = 0; n < mine.Length; n++)
            {
                Assert.Equal(r, fleet.Requests[mine[n]].Replica);
                Assert.Equal(alone.Requests[n].FinishMs, fleet.Requests[mine[n]].FinishMs, 6);
                Assert.Equal(alone.Requests[n].FirstTokenMs, fleet.Requests[mine[n]].FirstTokenMs, 6);
            }
        }
    }

    [Fact]
    public void One_replica_is_the_same_under_every_routing()
    {
        var trace = new Workload { RequestsPerSecond = 100, Count = 300, Seed = 3 }.Generate(Buckets).Requests;
        var shared = ServingSimulation.Simulate(Model, trace);
        foreach (var routing in new[] { FleetRouting.RoundRobin, FleetRouting.LeastOutstanding })
        {
            Assert.Equal(shared.Requests, ServingSimulation.Simulate(Model, trace, routing: routing).Requests);
        }
    }

    internal static DeploymentModel TrueModel(BucketSet buckets, Func<int, int, double> step, Func<int, double> prefill) =>
        new(buckets, [.. buckets.Prefill.Select(p => new PrefillValues(p, prefill(p), 0, double.NaN, 0, double.NaN))],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, step(b, d), 0, b)))], RepeatStatistic.Min, 0);

    /// <summary>
    /// Routed replicas, one prefill or one decode step at a time (the definition; O(steps x replicas)). At each instant: replicas
    /// whose prefill or step ends there complete it; then arrivals are routed (round-robin in arrival order, or to the fewest routed and
    /// unfinished); then every free replica starts its next prefill (a queued request, while a slot is free) or decode step.
    /// </summary>
    private static (int Replica, double FirstTokenMs, double FinishMs)[] StepByStep(DeploymentModel model, IReadOnlyList<TraceRequest> trace,
        int maxSeqs, int replicas, FleetRouting routing)
    {
        var buckets = model.Buckets;
        var result = new (int, double, double)[trace.Count];
        var arrivals = new Queue<int>(Enumerable.Range(0, trace.Count).OrderBy(k => trace[k].ArrivalMs).ThenBy(k => k));
        var queues = Enumerable.Range(0, replicas).Select(_ => new Queue<int>()).ToArray();
        var flight = Enumerable.Range(0, replicas).Select(_ => new List<(int Id, int Done)>()).ToArray();
        var busyUntil = Enumerable.Repeat(double.NaN, replicas).ToArray(); // NaN: free
        var prefilling = new int[replicas];
        var routed = new List<int>[replicas];
        for (var r = 0; r < replicas; r++)
        {
            routed[r] = [];
            prefilling[r] = -1;
        }

        var position = 0;
        var finished = new double[trace.Count];
        Array.Fill(finished, double.PositiveInfinity);
        while (true)
        {
            var now = arrivals.Count > 0 ? trace[arrivals.Peek()].ArrivalMs : double.PositiveInfinity;
            foreach (var t in busyUntil.Where(t => !double.IsNaN(t)))
            {
                now = Math.Min(now, t);
            }

            if (double.IsPositiveInfinity(now))
            {
                return result;
            }

            for (var r = 0; r < replicas; r++)
            {
                if (busyUntil[r] != now)
                {
                    continue;
                }

                busyUntil[r] = double.NaN;
                if (prefilling[r] >= 0)
                {
                    var id = prefilling[r];
                    prefilling[r] = -1;
                    if (trace[id].OutputLength == 1)
                    {
                        result[id].Item3 = now;
                        finished[id] = now;
                    }
                    else
                    {
                        flight[r].Add((id, 1));
                    }

                    continue;
                }

                for (var k = flight[r].Count - 1; k >= 0; k--)
                {
                    var (id, done) = flight[r][k];
                    if (done + 1 == trace[id].OutputLength)
                    {
                        result[id].Item3 = now;
                        finished[id] = now;
                        flight[r].RemoveAt(k);
                    }
                    else
                    {
                        flight[r][k] = (id, done + 1);
                    }
                }
            }

            while (arrivals.Count > 0 && trace[arrivals.Peek()].ArrivalMs == now)
            {
                var id = arrivals.Dequeue();
                var to = routing == FleetRouting.RoundRobin
                    ? position % replicas
                    : Enumerable.Range(0, replicas).MinBy(r => (routed[r].Count(x => finished[x] > now), r));
                position++;
                routed[to].Add(id);
                queues[to].Enqueue(id);
                result[id].Item1 = to;
            }

            for (var r = 0; r < replicas; r++)
            {
                if (!double.IsNaN(busyUntil[r]))
                {
                    continue;
                }

                // Requests being prefilled hold a slot.
                if (flight[r].Count < maxSeqs && queues[r].Count > 0)
                {
                    var id = queues[r].Dequeue();
                    var p = buckets.PrefillIndex(trace[id].InputLength);
                    result[id].Item2 = now + model.TtftMs(p);
                    busyUntil[r] = now + model.PrefillMs(p);
                    prefilling[r] = id;
                }
                else if (flight[r].Count > 0)
                {
                    var longest = flight[r].Max(f => buckets.StepLength(trace[f.Id].InputLength, f.Done));
                    busyUntil[r] = now + model.StepMs(buckets.BatchIndex(flight[r].Count), buckets.DecodeIndex(longest));
                }
            }
        }
    }
}
