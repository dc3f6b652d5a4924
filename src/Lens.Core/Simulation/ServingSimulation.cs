namespace Lens.Core;

/// <summary>What happened to one request of a simulated trace (ms from the trace's start).</summary>
/// <param name="ArrivalMs">When it arrived.</param>
/// <param name="StartMs">When it was admitted and its prefill began.</param>
/// <param name="FirstTokenMs">When its first token was emitted.</param>
/// <param name="FinishMs">When its last token was emitted.</param>
/// <param name="OutputLength">Its output tokens (for TPOT).</param>
/// <param name="Replica">The replica that served it.</param>
public readonly record struct ServedRequest(double ArrivalMs, double StartMs, double FirstTokenMs, double FinishMs, int OutputLength, int Replica)
{
    public double TtftMs => FirstTokenMs - ArrivalMs;

    public double E2eMs => FinishMs - ArrivalMs;

    public double QueueWaitMs => StartMs - ArrivalMs;

    /// <summary><c>(E2E - TTFT) / (O - 1)</c>; NaN when <c>O = 1</c>.</summary>
    public double TpotMs => OutputLength > 1 ? (FinishMs - FirstTokenMs) / (OutputLength - 1) : double.NaN;

    /// <summary>Whether the request met both objectives (a request without decode steps is judged on TTFT alone).</summary>
    public bool Meets(ServiceObjectives slo) => TtftMs <= slo.TtftMs && (OutputLength == 1 || TpotMs <= slo.TpotMs);
}

/// <summary>A simulated trace: every request in the trace's order, and what the replicas did.</summary>
/// <param name="Requests">One entry per trace request, in the trace's order.</param>
/// <param name="MaxNumSeqs">Sequences in flight at most per replica.</param>
/// <param name="Replicas">Replicas that shared the queue.</param>
/// <param name="DecodeSteps">Decode steps simulated over all replicas.</param>
/// <param name="BusyMs">Time the replicas spent on prefills and decode steps, summed.</param>
public sealed record ServingRun(IReadOnlyList<ServedRequest> Requests, int MaxNumSeqs, int Replicas, long DecodeSteps, double BusyMs)
{
    /// <summary>Percentiles, throughput, utilization and (with objectives) attainment and goodput.</summary>
    public SimulationResult Summarize(ServiceObjectives? slo = null)
    {
        var n = Requests.Count;
        var ttft = new double[n];
        var tpot = new double[n];
        var e2e = new double[n];
        var wait = new double[n];
        double first = double.MaxValue, last = 0;
        long outputTokens = 0;
        var met = 0;
        for (var k = 0; k < n; k++)
        {
            var r = Requests[k];
            (ttft[k], tpot[k], e2e[k], wait[k]) = (r.TtftMs, r.TpotMs, r.E2eMs, r.QueueWaitMs);
            first = Math.Min(first, r.ArrivalMs);
            last = Math.Max(last, r.FinishMs);
            outputTokens += r.OutputLength;
            if (slo is not null && r.Meets(slo))
            {
                met++;
            }
        }

        var span = Math.Max(last - first, double.Epsilon) / 1000;
        return new SimulationResult(n, Replicas, LatencyPercentiles.Of(ttft), LatencyPercentiles.Of(tpot), LatencyPercentiles.Of(e2e),
            LatencyPercentiles.Of(wait), n / span, outputTokens / span, BusyMs / 1000 / span / Replicas,
            slo is null ? null : (double)met / n)
        {
            MaxNumSeqs = MaxNumSeqs,
            GoodputPerSecond = slo is null ? null : met / span,
            DecodeSteps = DecodeSteps,
        };
    }
}

/// <summary>
/// Sees a serving simulation step by step, in the order the replicas run: what an analysis needs beyond each request's times
/// (which cells a request's latency is made of). Calls on one replica come in time order. Cells are the model's
/// (<see cref="StepCells"/>): a prefill bucket, or a row and column of the step table, whose axes the policy names (prefill-first:
/// batch bucket and decode or block bucket; chunked: token bucket and context bucket).
/// </summary>
public interface IServingObserver
{
    /// <summary>
    /// Prefill-first: trace request <paramref name="request"/> is admitted: its prefill (bucket index <paramref name="prefillIndex"/>) runs
    /// alone from <paramref name="startMs"/> for <paramref name="ms"/>.
    /// </summary>
    void Prefill(int replica, int request, int prefillIndex, double startMs, double ms);

    /// <summary>
    /// <paramref name="steps"/> identical steps run from <paramref name="startMs"/>, <paramref name="stepMs"/> each, at step-table row
    /// <paramref name="batchIndex"/> and column <paramref name="decodeIndex"/> (prefill-first: decode steps at a batch bucket and a decode
    /// or block bucket; chunked: every step, at a token bucket and a context bucket).
    /// </summary>
    void Decode(int replica, int batchIndex, int decodeIndex, long steps, double startMs, double stepMs);

    /// <summary>Trace request <paramref name="request"/> emitted its last token (after its prefill when <c>O = 1</c>, else after a decode run).</summary>
    void Finished(int replica, int request);

    /// <summary>Chunked: trace request <paramref name="request"/> is admitted; its first chunk runs in the step from <paramref name="startMs"/>
    /// (reported next by <see cref="Decode"/>).</summary>
    void Admitted(int replica, int request, double startMs)
    {
    }

    /// <summary>Chunked: trace request <paramref name="request"/>'s prompt completed in the step reported last; its first token came then.</summary>
    void FirstToken(int replica, int request)
    {
    }
}

/// <summary>
/// Continuous batching, simulated step by step with the model's costs under the model's scheduling policy (method.md, "Batched
/// serving", "Scheduling policies"; <see cref="PolicyScheduler"/> is the step-by-step definition this is tested against). At most
/// <c>max_num_seqs</c> sequences are in flight per replica; the others wait first come first served in one queue shared by the replicas
/// (or, with <see cref="FleetRouting"/>, in per-replica queues behind a router). The shared queue's head goes to the replica that first
/// reaches a step boundary at or after its arrival with room for it: the end of its prefill or decode step, or the arrival itself for a
/// replica with nothing in flight; replicas at a boundary at the same instant take in index order (<see cref="SharedQueue"/>). So a
/// replica mid-decode takes a request that arrives during another replica's prefill when its step ends first. Under prefill-first, at
/// each step boundary of a replica:
/// <list type="number">
/// <item>if the queue's head has arrived and a slot is free (paged: and its KV blocks), it is admitted and its prefill runs alone at
/// <c>pre(I)</c>, costing <c>A[pre(I)]</c>; its first token is emitted at its TTFT (a request with <c>O = 1</c> is done when its
/// prefill ends), and the prefill's end is the replica's next boundary (so it admits while it can, prefills back to back);</item>
/// <item>else, if sequences are in flight, one decode step runs for all <c>n</c> of them at batch bucket <c>bat(n)</c> and the decode bucket
/// of the longest sequence after this step's append (padded) or the block bucket of the batch's KV blocks (paged); each sequence gets
/// a token, one that has its <c>O</c> tokens leaves after the step, and the step's end is the next boundary.</item>
/// </list>
/// Under chunked, every step has a token budget shared by decodes and prompt chunks (<see cref="ChunkedReplica"/>).
/// Exact for the model and deterministic. Runs of identical steps (same cell, no arrival admitted, no sequence finishing; a run ends at
/// the first boundary where its replica would take the queue's head) are taken at once, so the cost grows with the number of events
/// (admissions, departures, bucket crossings, chunked steps with prompt tokens), not with the steps or the simulated time. With batch buckets <c>[1]</c> it is the one-request-at-a-time device of earlier releases.
/// </summary>
public static partial class ServingSimulation
{
    /// <summary>
    /// Simulates <paramref name="trace"/> on <paramref name="replicas"/> replicas of the deployment <paramref name="model"/>, under its
    /// scheduling policy. <paramref name="maxNumSeqs"/> defaults to the model's (<see cref="DeploymentModel.MaxNumSeqs"/>) and may not
    /// exceed it. Throws <see cref="RequestOutOfRangeException"/> naming the trace row (1-based) of a request the policy cannot serve,
    /// and <see cref="UnfittedBucketException"/> when a needed bucket has no fit. <paramref name="routing"/> says how the fleet's
    /// requests reach its replicas: one shared queue (the default), or a router in front of per-replica queues (<see cref="FleetRouting"/>).
    /// </summary>
    /// <param name="observer">Sees every prefill and decode run as it is simulated (exposure analyses; the shared queue only); null: none.</param>
    public static ServingRun Simulate(DeploymentModel model, IReadOnlyList<TraceRequest> trace, int? maxNumSeqs = null, int replicas = 1,
        FleetRouting routing = FleetRouting.Shared, IServingObserver? observer = null) =>
        Simulate(model, trace, maxNumSeqs, replicas, routing, null, observer)!;

    /// <summary>As <see cref="Simulate(DeploymentModel, IReadOnlyList{TraceRequest}, int?, int, FleetRouting, IServingObserver)"/>, stopping
    /// (null) as soon as more requests miss the objectives than <paramref name="budget"/> allows: a capacity search only needs to know that.</summary>
    internal static ServingRun? Simulate(DeploymentModel model, IReadOnlyList<TraceRequest> trace, int? maxNumSeqs, int replicas,
        FleetRouting routing, MissBudget? budget, IServingObserver? observer = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(trace);
        var seqs = maxNumSeqs ?? model.MaxNumSeqs;
        if (seqs < 1 || seqs > model.MaxNumSeqs)
        {
            throw new ArgumentOutOfRangeException(nameof(maxNumSeqs), seqs, model.Policy.Scheduler == SchedulerKind.Chunked
                ? $"max_num_seqs {seqs} is outside 1..{model.MaxNumSeqs} (the chunked policy's max_num_seqs)"
                : $"max_num_seqs {seqs} is outside 1..{model.MaxNumSeqs} (the largest batch bucket of {model.Buckets})");
        }

        if (replicas < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(replicas), replicas, "at least one replica is needed");
        }

        if (trace.Count == 0)
        {
            throw new ArgumentException("the trace is empty; give at least one request");
        }

        if (!model.Policy.IsDefault)
        {
            _ = model.Scheduler; // the policy must run on the model's buckets (throws naming why not)
        }

        for (var k = 0; k < trace.Count; k++)
        {
            var r = trace[k];
            if (!(r.ArrivalMs >= 0) || !double.IsFinite(r.ArrivalMs))
            {
                throw new RequestOutOfRangeException($"trace row {k + 1}: arrival {r.ArrivalMs} ms is not a finite time >= 0");
            }

            if (model.CheckRequest(r.InputLength, r.OutputLength) is { } reason)
            {
                throw new RequestOutOfRangeException($"trace row {k + 1}: {reason}");
            }
        }

        var order = ArrivalOrder(trace);
        if (routing != FleetRouting.Shared && replicas > 1)
        {
            if (observer is not null)
            {
                throw new ArgumentException("an observer sees the shared queue only; route the fleet through one queue to observe it");
            }

            var fleet = new RoutedFleet(model, trace, order, seqs, replicas, routing, budget);
            fleet.Run();
            return budget is { Exhausted: true } ? null : Result(fleet.Context, seqs, replicas);
        }

        var queue = new SharedQueue(new ServingContext(model, trace, seqs, observer) { Budget = budget }, order, replicas);
        queue.Run();
        return budget is { Exhausted: true } ? null : Result(queue.Context, seqs, replicas);
    }

    /// <summary>
    /// Static batch (the paper's batch mode): <paramref name="requests"/> started together on one replica, admitted in the given order
    /// (at most <paramref name="maxNumSeqs"/> at once), each one's TTFT and E2E.
    /// </summary>
    public static ServingRun StaticBatch(DeploymentModel model, IReadOnlyList<RequestPair> requests, int? maxNumSeqs = null)
    {
        ArgumentNullException.ThrowIfNull(requests);
        return Simulate(model, [.. requests.Select(r => new TraceRequest(0, r.InputLength, r.OutputLength))], maxNumSeqs);
    }

    private static ServingRun Result(ServingContext context, int seqs, int replicas) =>
        new(context.Served, seqs, replicas, context.DecodeSteps, context.BusyMs);

    /// <summary>The replica scheduler of the model's policy.</summary>
    private static ReplicaScheduler CreateReplica(ServingContext context, int index) =>
        context.Model.Policy.Scheduler == SchedulerKind.Chunked ? new ChunkedReplica(context, index) : new PrefillFirstReplica(context, index);

    /// <summary>Trace indices in arrival order, stable for equal times: the FCFS queue.</summary>
    private static int[] ArrivalOrder(IReadOnlyList<TraceRequest> trace)
    {
        var order = new int[trace.Count];
        var sorted = true;
        for (var k = 0; k < order.Length; k++)
        {
            order[k] = k;
            sorted &= k == 0 || trace[k - 1].ArrivalMs <= trace[k].ArrivalMs;
        }

        if (sorted)
        {
            return order; // already first come first served (generated traces are): the sort would keep it
        }

        var arrivals = trace.Select(r => r.ArrivalMs).ToArray();
        Array.Sort(arrivals, order);
        // Array.Sort is not stable: put each run of equal times back in the trace's order.
        for (int from = 0, to = 1; to <= order.Length; to++)
        {
            if (to == order.Length || arrivals[to] != arrivals[from])
            {
                Array.Sort(order, from, to - from);
                from = to;
            }
        }

        return order;
    }
}
