namespace Lens.Core.Tests;

/// <summary>The serving simulation's fast path of every policy against the step-by-step reference (<see cref="PolicyScheduler"/>).</summary>
public class PolicyServingTests
{
    /// <summary>A random deployment under <paramref name="policy"/> (0: prefill-first padded, 1: paged, 2: chunked, 3: paged with blocks
    /// above 4096 tokens, which the replica counts by a scan per run instead of incrementally) with random costs.</summary>
    internal static DeploymentModel RandomModel(Random rng, int policy)
    {
        var edges = new SortedSet<int>();
        for (int i = 0, edge = 0, n = rng.Next(1, 6); i < n; i++)
        {
            edge += rng.Next(4, 200);
            edges.Add(edge);
        }

        var convention = rng.Next(2) == 0 ? DecodeConvention.AfterAppend : DecodeConvention.BeforeAppend;
        switch (policy)
        {
            case 1 or 3:
            {
                var blockSize = policy == 3 ? 4097 + rng.Next(50) : 1 << rng.Next(0, 5);
                var blocks = new SortedSet<int>();
                for (int i = 0, b = 0, n = rng.Next(1, 6); i < n; i++)
                {
                    b += rng.Next(1, 24);
                    blocks.Add(b);
                }

                var buckets = BucketSet.Paged(edges, blocks, convention, [1, 2, 4, 8]);
                return PolicyModelTests.Model(buckets, SchedulingPolicy.PagedDecode(blockSize), (b, k) => 0.5 + (0.2 * b) + (0.01 * k) + rng.NextDouble(),
                    p => 2 + (0.02 * p) + rng.NextDouble());
            }

            case 2:
            {
                var budget = rng.Next(2) == 0 ? rng.Next(4, 24) : rng.Next(24, 300);
                int[] tokens = [.. new SortedSet<int> { Math.Max(1, budget / 8), Math.Max(1, budget / 2), budget, budget + rng.Next(0, 3) }];
                var buckets = new BucketSet([edges.Max], edges, convention, tokens);
                var policyValue = SchedulingPolicy.ChunkedPrefill(budget, tokens, rng.Next(1, Math.Min(budget, 16) + 1));
                return PolicyModelTests.Model(buckets, policyValue, (t, k) => 0.5 + (0.01 * t) + (0.005 * k) + rng.NextDouble(), _ => double.NaN);
            }

            default:
            {
                var buckets = new BucketSet(edges.Count == 1 ? [edges.Min] : [edges.Min, edges.Max], edges, convention, [1, 2, 4, 8]);
                return PolicyModelTests.Model(buckets, SchedulingPolicy.Default, (b, d) => 0.5 + (0.3 * b) + (d * 0.002) + rng.NextDouble(),
                    p => 3 + (p * 0.01));
            }
        }
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0, 2)]
    [InlineData(1, 1)]
    [InlineData(1, 2)]
    [InlineData(1, 3)]
    [InlineData(1, 4)]
    [InlineData(1, 5)]
    [InlineData(1, 6)]
    [InlineData(1, 7)]
    [InlineData(1, 8)]
    [InlineData(3, 1)]
    [InlineData(3, 2)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(2, 3)]
    [InlineData(2, 4)]
    [InlineData(2, 5)]
    [InlineData(2, 6)]
    [InlineData(2, 7)]
    [InlineData(2, 8)]
    public void The_fast_path_gives_the_references_times_on_random_traces(int policy, int seed)
    {
        var rng = new Random((policy * 100) + seed);
        var model = RandomModel(rng, policy);
        var rate = 5 + (rng.NextDouble() * 80);
        var trace = new Workload { RequestsPerSecond = rate, Count = 300, Seed = seed, MaxOutput = 1 + rng.Next(1, 80) }.Generate(model).Requests;
        var seqs = 1 + rng.Next(model.MaxNumSeqs);
        var fast = ServingSimulation.Simulate(model, trace, seqs);
        var reference = new Reference(trace.Count, model.Cells);
        model.Scheduler.Run(trace, model.Costs, reference, seqs);
        for (var k = 0; k < trace.Count; k++)
        {
            Assert.Equal(reference.First[k], fast.Requests[k].FirstTokenMs, 1e-9 * Math.Max(1, reference.First[k]));
            Assert.Equal(reference.Finish[k], fast.Requests[k].FinishMs, 1e-9 * Math.Max(1, reference.Finish[k]));
            Assert.Equal(reference.Start[k], fast.Requests[k].StartMs, 1e-9 * Math.Max(1, reference.Start[k]));
        }

        Assert.Equal(reference.Steps, fast.DecodeSteps);
        Assert.Equal(reference.BusyMs, fast.BusyMs, 1e-9 * reference.BusyMs);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Every_policy_serves_a_fleet_through_one_queue_or_a_router_and_a_lone_replica_is_the_same_either_way(int policy)
    {
        var model = RandomModel(new Random(7 + policy), policy);
        var trace = new Workload { RequestsPerSecond = 60, Count = 400, Seed = 3, MaxOutput = 40 }.Generate(model).Requests;
        var shared = ServingSimulation.Simulate(model, trace, replicas: 1);
        var routed = ServingSimulation.Simulate(model, trace, replicas: 1, routing: FleetRouting.RoundRobin);
        Assert.Equal(shared.Requests, routed.Requests);
        foreach (var routing in new[] { FleetRouting.Shared, FleetRouting.RoundRobin, FleetRouting.LeastOutstanding })
        {
            var fleet = ServingSimulation.Simulate(model, trace, replicas: 3, routing: routing);
            Assert.All(fleet.Requests, r => Assert.True(r.ArrivalMs <= r.StartMs && r.StartMs <= r.FirstTokenMs && r.FirstTokenMs <= r.FinishMs));
            Assert.Equal(3, fleet.Requests.Select(r => r.Replica).Distinct().Count());
            Assert.All(fleet.Requests, r => Assert.True(double.IsFinite(r.FinishMs)));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Paged_runs_end_only_where_a_sequence_leaves_or_the_blocks_change_bucket(int seed)
    {
        // A group released at once: after the prefills, a run that ends with no departure must end at a block-bucket change.
        var rng = new Random(seed);
        var model = RandomModel(rng, 1);
        var group = Enumerable.Range(0, model.MaxNumSeqs).Select(_ => new TraceRequest(0, 1 + rng.Next(model.Buckets.MaxPrompt),
            2 + rng.Next(200))).ToArray();
        var fitted = Workload.Fit(model, group).Requests;
        var runs = new RunLog();
        ServingSimulation.Simulate(model, fitted, observer: runs);
        Assert.NotEmpty(runs.Runs);
        for (var k = 1; k < runs.Runs.Count; k++)
        {
            if (!runs.Runs[k - 1].FinishedAfter)
            {
                Assert.NotEqual(runs.Runs[k - 1].Column, runs.Runs[k].Column);
            }
        }

        var reference = new Reference(fitted.Count, model.Cells);
        model.Scheduler.Run(fitted, model.Costs, reference);
        Assert.Equal(reference.Steps, runs.Runs.Sum(r => r.Steps));
    }

    private sealed class RunLog : IServingObserver
    {
        public List<(int Column, long Steps, bool FinishedAfter)> Runs { get; } = [];

        public void Prefill(int replica, int request, int prefillIndex, double startMs, double ms)
        {
        }

        public void Decode(int replica, int batchIndex, int decodeIndex, long steps, double startMs, double stepMs) =>
            Runs.Add((decodeIndex, steps, false));

        public void Finished(int replica, int request)
        {
            if (Runs.Count > 0)
            {
                Runs[^1] = Runs[^1] with { FinishedAfter = true };
            }
        }
    }

    [Fact]
    public void An_observer_sees_every_chunked_step_admission_and_first_token()
    {
        var model = RandomModel(new Random(11), 2);
        var trace = new Workload { RequestsPerSecond = 30, Count = 200, Seed = 5, MaxOutput = 30 }.Generate(model).Requests;
        var seen = new Seen();
        var run = ServingSimulation.Simulate(model, trace, observer: seen);
        Assert.Equal(run.DecodeSteps, seen.Steps);
        Assert.Equal(trace.Count, seen.Admitted.Count);
        Assert.Equal(trace.Count, seen.First.Count);
        Assert.Equal(trace.Count, seen.Finished);
        Assert.Equal(0, seen.Prefills);
        Assert.All(seen.Admitted, a => Assert.Equal(run.Requests[a.Key].StartMs, a.Value));
    }

    private sealed class Seen : IServingObserver
    {
        public long Steps { get; private set; }

        public int Prefills { get; private set; }

        public int Finished { get; private set; }

        public Dictionary<int, double> Admitted { get; } = [];

        public HashSet<int> First { get; } = [];

        public void Prefill(int replica, int request, int prefillIndex, double startMs, double ms) => Prefills++;

        public void Decode(int replica, int batchIndex, int decodeIndex, long steps, double startMs, double stepMs) => Steps += steps;

        void IServingObserver.Finished(int replica, int request) => Finished++;

        void IServingObserver.Admitted(int replica, int request, double startMs) => Admitted.Add(request, startMs);

        void IServingObserver.FirstToken(int replica, int request) => Assert.True(First.Add(request));
    }

    /// <summary>Each request's start, first-token and finish times, the steps (decode steps under prefill-first) and busy time.</summary>
    private sealed class Reference(int count, StepCells cells) : IStepSink
    {
        public double[] Start { get; } = Enumerable.Repeat(double.NaN, count).ToArray();

        public double[] First { get; } = new double[count];

        public double[] Finish { get; } = new double[count];

        public long Steps { get; private set; }

        public double BusyMs { get; private set; }

        public void Step(ScheduledStep step)
        {
            BusyMs += step.EndMs - step.StartMs;
            Steps += cells.IsPrefill(step.Cell) ? 0 : 1;
            foreach (var chunk in step.Prompt)
            {
                if (double.IsNaN(Start[chunk.Request]))
                {
                    Start[chunk.Request] = step.StartMs;
                }
            }

            foreach (var id in step.FirstToken)
            {
                First[id] = step.FirstTokenAtMs;
            }

            foreach (var id in step.Finished)
            {
                Finish[id] = step.EndMs;
            }
        }
    }
}
