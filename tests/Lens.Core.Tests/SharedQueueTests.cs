namespace Lens.Core.Tests;

/// <summary>
/// The shared-queue fleet (one FCFS queue, several replicas): the queue's head goes to the replica that first reaches a step boundary
/// at or after its arrival with room for it (ties: the lower replica index). The fast path against a plain step-by-step reference.
/// </summary>
public class SharedQueueTests
{
    [Fact]
    public void A_replica_mid_decode_takes_a_request_that_arrives_during_another_replicas_prefill()
    {
        // Prefills cost 100 ms, decode steps 10 ms. Requests 0 and 1 arrive at 0: replica 0 takes 0, replica 1 (idle) takes 1; both
        // prefill to 100 and decode from there (boundaries 110, 120, ...). Request 2 arrives at 155: both replicas reach a boundary at
        // 160, replica 0 (the lower index) takes it and prefills 160..260. Request 3 arrives at 170, during that prefill: replica 1's
        // decode step ends at 170, first, so it takes it and prefills 170..270. (The rule before kept it on replica 0, the replica
        // running admissions, from 260: TTFT 190 ms instead of 100.)
        var buckets = new BucketSet([64], [256], DecodeConvention.AfterAppend, [1, 2, 4]);
        var model = FleetRoutingTests.TrueModel(buckets, (_, _) => 10, _ => 100);
        TraceRequest[] trace = [new(0, 10, 50), new(0, 10, 50), new(155, 10, 50), new(170, 10, 50)];
        var run = ServingSimulation.Simulate(model, trace, replicas: 2);
        Assert.Equal([0, 1, 0, 1], run.Requests.Select(r => r.Replica));
        Assert.Equal([0, 0, 160, 170], run.Requests.Select(r => r.StartMs));
        Assert.Equal(270, run.Requests[3].FirstTokenMs);
        Assert.Equal(100, run.Requests[3].TtftMs);

        // Replica 1 decodes batch 1 from 100 to 170 (7 steps), then after its prefill batch 2: request 1's 49 decode steps end at 100 + 7 *
        // 10 + 100 + 42 * 10 = 690.
        Assert.Equal(690, run.Requests[1].FinishMs);
        var reference = Reference(model, trace, model.MaxNumSeqs, 2);
        Assert.Equal(reference.Start, run.Requests.Select(r => r.StartMs));

        // A lone replica keeps every request: request 3 waits for the prefill of request 2.
        var lone = ServingSimulation.Simulate(model, trace);
        Assert.True(lone.Requests[3].StartMs >= lone.Requests[2].StartMs + 100);
    }

    [Theory]
    [InlineData(0, 2)]
    [InlineData(0, 3)]
    [InlineData(0, 4)]
    [InlineData(0, 5)]
    [InlineData(0, 8)]
    [InlineData(1, 2)]
    [InlineData(1, 3)]
    [InlineData(1, 6)]
    [InlineData(1, 8)]
    [InlineData(2, 2)]
    [InlineData(2, 3)]
    [InlineData(2, 5)]
    [InlineData(2, 8)]
    public void The_fast_path_gives_the_step_by_step_references_times_for_a_fleet_behind_one_queue(int policy, int replicas)
    {
        for (var seed = 0; seed < 4; seed++)
        {
            var rng = new Random((policy * 1000) + (replicas * 10) + seed);
            var model = PolicyServingTests.RandomModel(rng, policy);
            var rate = replicas * (5 + (rng.NextDouble() * 80));
            var trace = new Workload { RequestsPerSecond = rate, Count = 250, Seed = seed, MaxOutput = 1 + rng.Next(1, 80) }.Generate(model).Requests;
            var seqs = 1 + rng.Next(model.MaxNumSeqs);
            var fast = ServingSimulation.Simulate(model, trace, seqs, replicas);
            var reference = Reference(model, trace, seqs, replicas);
            for (var k = 0; k < trace.Count; k++)
            {
                Assert.Equal(reference.Start[k], fast.Requests[k].StartMs, 1e-9 * Math.Max(1, reference.Start[k]));
                Assert.Equal(reference.First[k], fast.Requests[k].FirstTokenMs, 1e-9 * Math.Max(1, reference.First[k]));
                Assert.Equal(reference.Finish[k], fast.Requests[k].FinishMs, 1e-9 * Math.Max(1, reference.Finish[k]));
                Assert.Equal(reference.Replica[k], fast.Requests[k].Replica);
            }

            Assert.Equal(reference.Steps, fast.DecodeSteps);
            Assert.Equal(reference.BusyMs, fast.BusyMs, 1e-9 * reference.BusyMs);
            Assert.True(fast.Requests.Select(r => r.Replica).Distinct().Count() > 1 || trace.Count < replicas);
        }
    }

    /// <summary>
    /// The shared-queue fleet, one step at a time (the definition; O(steps)). Each replica's next boundary: now while it has sequences
    /// in flight, else the queue head's arrival (not before now). The replica with the earliest boundary (the lower index on ties) goes.
    /// Prefill-first (padded or paged): it admits the head if it has arrived and there is room (a slot; paged: its KV blocks beside those
    /// reserved) and runs its prefill, else runs one decode step of everyone in flight. Chunked: it runs one step (admitting what has
    /// arrived while the budget and a slot allow).
    /// </summary>
    internal static (double[] Start, double[] First, double[] Finish, int[] Replica, long Steps, double BusyMs) Reference(DeploymentModel model,
        IReadOnlyList<TraceRequest> trace, int maxSeqs, int replicas)
    {
        var buckets = model.Buckets;
        var paged = model.Policy.Execution == ExecutionKind.Paged;
        var blockSize = Math.Max(1, model.Policy.BlockSize);
        var capacity = paged ? model.Scheduler.KvCapacityBlocks : long.MaxValue;
        long Need(int id) => paged ? ((long)trace[id].InputLength + trace[id].OutputLength + blockSize - 1) / blockSize : 0;

        var (start, first, finish, replica) = (new double[trace.Count], new double[trace.Count], new double[trace.Count], new int[trace.Count]);
        long steps = 0;
        double busy = 0;
        var queue = new Queue<int>(Enumerable.Range(0, trace.Count).OrderBy(k => trace[k].ArrivalMs).ThenBy(k => k));
        var now = new double[replicas];
        var reserved = new long[replicas];
        var flight = Enumerable.Range(0, replicas).Select(_ => new List<(int Id, int Done)>()).ToArray();
        var chunked = model.Policy.Scheduler == SchedulerKind.Chunked;
        var prompts = Enumerable.Range(0, replicas).Select(_ => new List<int>()).ToArray(); // chunked: admitted, prompt not complete
        var prompted = new int[trace.Count];
        bool Room(int r) => flight[r].Count + prompts[r].Count < maxSeqs && reserved[r] + Need(queue.Peek()) <= capacity;
        while (true)
        {
            var r = -1;
            var at = double.MaxValue;
            for (var x = 0; x < replicas; x++)
            {
                var boundary = flight[x].Count + prompts[x].Count > 0 ? now[x]
                    : queue.Count > 0 && Room(x) ? Math.Max(now[x], trace[queue.Peek()].ArrivalMs) : double.MaxValue;
                if (boundary < at)
                {
                    (r, at) = (x, boundary);
                }
            }

            if (r < 0)
            {
                break;
            }

            now[r] = at;
            if (chunked)
            {
                ChunkedStep(r);
                continue;
            }

            if (queue.Count > 0 && trace[queue.Peek()].ArrivalMs <= now[r] && Room(r))
            {
                var id = queue.Dequeue();
                var p = buckets.PrefillIndex(trace[id].InputLength);
                (start[id], first[id], replica[id]) = (now[r], now[r] + model.TtftMs(p), r);
                var a = model.CellMs(model.Cells.Prefill(p));
                now[r] += a;
                busy += a;
                if (trace[id].OutputLength > 1)
                {
                    flight[r].Add((id, 1));
                    reserved[r] += Need(id);
                }
                else
                {
                    finish[id] = now[r];
                }

                continue;
            }

            var lengths = flight[r].Select(f => buckets.StepLength(trace[f.Id].InputLength, f.Done)).ToArray();
            var column = paged ? buckets.DecodeIndex((int)lengths.Sum(l => ((long)l + blockSize - 1) / blockSize)) : buckets.DecodeIndex(lengths.Max());
            var cost = model.CellMs(model.Cells.Step(buckets.BatchIndex(flight[r].Count), column));
            now[r] += cost;
            busy += cost;
            steps++;
            for (var k = flight[r].Count - 1; k >= 0; k--)
            {
                var (id, done) = flight[r][k];
                if (done + 1 == trace[id].OutputLength)
                {
                    finish[id] = now[r];
                    reserved[r] -= Need(id);
                    flight[r].RemoveAt(k);
                }
                else
                {
                    flight[r][k] = (id, done + 1);
                }
            }
        }

        return (start, first, finish, replica, steps, busy);

        // Chunked (method.md, "Scheduling policies"): decoding sequences get a token each, then partly processed prompts and then
        // arrived requests (while a slot is free) get chunks of what is left of the budget; cost C[token bucket, context bucket].
        void ChunkedStep(int r)
        {
            var budget = model.Policy.MaxNumBatchedTokens;
            var context = 0;
            var running = flight[r];
            foreach (var (id, done) in running.Where(f => f.Done > 0))
            {
                budget--;
                context = Math.Max(context, trace[id].InputLength + done);
            }

            var chunks = new Dictionary<int, int>();
            foreach (var id in prompts[r])
            {
                var chunk = Math.Min(trace[id].InputLength - prompted[id], budget);
                if (chunk > 0)
                {
                    chunks[id] = chunk;
                    budget -= chunk;
                }
            }

            while (budget > 0 && running.Count + prompts[r].Count < maxSeqs && queue.Count > 0 && trace[queue.Peek()].ArrivalMs <= now[r])
            {
                var id = queue.Dequeue();
                (start[id], replica[id]) = (now[r], r);
                prompts[r].Add(id);
                chunks[id] = Math.Min(trace[id].InputLength, budget);
                budget -= chunks[id];
            }

            foreach (var (id, chunk) in chunks)
            {
                context = Math.Max(context, prompted[id] + chunk);
            }

            var row = Array.FindIndex([.. model.Policy.TokenBuckets], t => t >= model.Policy.MaxNumBatchedTokens - budget);
            var cost = model.CellMs(model.Cells.Step(row, buckets.DecodeIndex(context)));
            now[r] += cost;
            busy += cost;
            steps++;
            for (var k = running.Count - 1; k >= 0; k--)
            {
                var (id, done) = running[k];
                if (done + 1 == trace[id].OutputLength)
                {
                    finish[id] = now[r];
                    running.RemoveAt(k);
                }
                else
                {
                    running[k] = (id, done + 1);
                }
            }

            foreach (var (id, chunk) in chunks)
            {
                prompted[id] += chunk;
                if (prompted[id] == trace[id].InputLength)
                {
                    prompts[r].Remove(id);
                    first[id] = now[r];
                    if (trace[id].OutputLength == 1)
                    {
                        finish[id] = now[r];
                    }
                    else
                    {
                        running.Add((id, 1));
                    }
                }
            }
        }
    }
}
