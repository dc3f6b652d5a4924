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
/// (which cells a request's latency is made of). Calls on one replica come in time order.
/// </summary>
public interface IServingObserver
{
    /// <summary>
    /// Trace request <paramref name="request"/> is admitted: its prefill (bucket index <paramref name="prefillIndex"/>) runs alone from
    /// <paramref name="startMs"/> for <paramref name="ms"/>.
    /// </summary>
    void Prefill(int replica, int request, int prefillIndex, double startMs, double ms);

    /// <summary>
    /// <paramref name="steps"/> identical decode steps run from <paramref name="startMs"/>, <paramref name="stepMs"/> each, at batch
    /// bucket index <paramref name="batchIndex"/> and decode index <paramref name="decodeIndex"/>.
    /// </summary>
    void Decode(int replica, int batchIndex, int decodeIndex, long steps, double startMs, double stepMs);

    /// <summary>Trace request <paramref name="request"/> emitted its last token (after its prefill when <c>O = 1</c>, else after a decode run).</summary>
    void Finished(int replica, int request);
}

/// <summary>
/// Continuous batching with batch-size buckets, simulated step by step with the model's costs (method.md, "Batched serving"; the
/// scheduler of vLLM and NxD Inference on Neuron). At most <c>max_num_seqs</c> sequences are in flight per replica; the others wait
/// first come first served in one queue shared by the replicas. Each iteration of a replica:
/// <list type="number">
/// <item>while a request has arrived and a slot is free, it is admitted and its prefill runs alone at <c>pre(I)</c>, costing
/// <c>A[pre(I)]</c>; its first token is emitted at its TTFT (a request with <c>O = 1</c> is done when its prefill ends); a request
/// that arrived after the iteration began goes instead to another replica that had nothing in flight then (an idle replica does not
/// watch a busy one take the queue's work);</item>
/// <item>if sequences are in flight, one decode step runs for all <c>n</c> of them at batch bucket <c>bat(n)</c> and the decode bucket
/// of the longest sequence after this step's append (padded execution), costing <c>S[bat(n), dec(max length)]</c>; each sequence
/// gets a token, and one that has its <c>O</c> tokens leaves after the step.</item>
/// </list>
/// Exact for the model and deterministic. Runs of identical steps (same batch, same decode bucket, no arrival admitted, no sequence
/// finishing) are taken at once, so the cost grows with the number of events (admissions, departures, bucket crossings), not with
/// the steps or the simulated time. With batch buckets <c>[1]</c> it is the one-request-at-a-time device of earlier releases.
/// </summary>
public static partial class ServingSimulation
{
    /// <summary>
    /// Simulates <paramref name="trace"/> on <paramref name="replicas"/> replicas of the deployment <paramref name="model"/>.
    /// <paramref name="maxNumSeqs"/> defaults to the largest batch bucket and may not exceed it. Throws
    /// <see cref="RequestOutOfRangeException"/> naming the trace row (1-based) of a request the buckets cannot serve, and
    /// <see cref="UnfittedBucketException"/> when a needed bucket has no fit. <paramref name="routing"/> says how the fleet's requests
    /// reach its replicas: one shared queue (the default), or a router in front of per-replica queues (<see cref="FleetRouting"/>).
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
        var buckets = model.Buckets;
        var seqs = maxNumSeqs ?? buckets.MaxBatch;
        if (seqs < 1 || seqs > buckets.MaxBatch)
        {
            throw new ArgumentOutOfRangeException(nameof(maxNumSeqs), seqs,
                $"max_num_seqs {seqs} is outside 1..{buckets.MaxBatch} (the largest batch bucket of {buckets})");
        }

        if (replicas < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(replicas), replicas, "at least one replica is needed");
        }

        if (trace.Count == 0)
        {
            throw new ArgumentException("the trace is empty; give at least one request");
        }

        for (var k = 0; k < trace.Count; k++)
        {
            var r = trace[k];
            if (!(r.ArrivalMs >= 0) || !double.IsFinite(r.ArrivalMs))
            {
                throw new RequestOutOfRangeException($"trace row {k + 1}: arrival {r.ArrivalMs} ms is not a finite time >= 0");
            }

            if (buckets.CheckRequest(r.InputLength, r.OutputLength) is { } reason)
            {
                throw new RequestOutOfRangeException($"trace row {k + 1}: {reason}");
            }
        }

        // Arrival order, stable for equal times: the FCFS queue.
        var order = new int[trace.Count];
        for (var k = 0; k < order.Length; k++)
        {
            order[k] = k;
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
        if (routing != FleetRouting.Shared && replicas > 1)
        {
            if (observer is not null)
            {
                throw new ArgumentException("an observer sees the shared queue only; route the fleet through one queue to observe it");
            }

            var fleet = new RoutedFleet(model, trace, order, seqs, replicas, routing) { Budget = budget };
            fleet.Run();
            return budget is { Exhausted: true } ? null : new ServingRun(fleet.Served, seqs, replicas, fleet.DecodeSteps, fleet.BusyMs);
        }

        var state = new Scheduler(model, trace, order, seqs, replicas, observer) { Budget = budget };
        state.Run();
        return budget is { Exhausted: true } ? null : new ServingRun(state.Served, seqs, replicas, state.DecodeSteps, state.BusyMs);
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

    private sealed class Scheduler
    {
        private readonly DeploymentModel _model;
        private readonly BucketSet _buckets;
        private readonly IReadOnlyList<TraceRequest> _trace;
        private readonly int[] _order;
        private readonly int _maxSeqs;
        private readonly Replica[] _replicas;
        private readonly int[] _decodeEdges;
        private readonly IServingObserver? _observer;
        private int _next; // head of the FCFS queue, an index into _order
        private int _idle = -1; // replicas with nothing in flight (set on the first use)

        public Scheduler(DeploymentModel model, IReadOnlyList<TraceRequest> trace, int[] order, int maxSeqs, int replicas, IServingObserver? observer)
        {
            _observer = observer;
            _model = model;
            _buckets = model.Buckets;
            _trace = trace;
            _order = order;
            _maxSeqs = maxSeqs;
            _decodeEdges = [.. _buckets.Decode];
            _replicas = [.. Enumerable.Range(0, replicas).Select(_ => new Replica(maxSeqs))];
            Served = new ServedRequest[trace.Count];
        }

        public ServedRequest[] Served { get; }

        public MissBudget? Budget { get; init; }

        public long DecodeSteps { get; private set; }

        public double BusyMs { get; private set; }

        public void Run()
        {
            // The replica whose next iteration starts first goes next (ties: the lower index), so the shared queue is served in time order.
            var ready = new PriorityQueue<int, (double, int)>();
            for (var r = 0; r < _replicas.Length; r++)
            {
                if (NextStart(_replicas[r]) is { } t)
                {
                    ready.Enqueue(r, (t, r));
                }
            }

            while (ready.TryDequeue(out var r, out var key))
            {
                if (Budget is { Exhausted: true })
                {
                    return;
                }

                var replica = _replicas[r];
                replica.Now = Math.Max(replica.Now, key.Item1);
                Iterate(replica, r);
                if (NextStart(replica) is { } next)
                {
                    ready.Enqueue(r, (next, r));
                }
            }
        }

        /// <summary>Whether a replica other than <paramref name="self"/> has nothing in flight and could start a request that arrives
        /// at <paramref name="arrival"/> before <paramref name="now"/>.</summary>
        private bool IdleElsewhere(int self, double arrival, double now)
        {
            if (_idle < 0)
            {
                _idle = _replicas.Count(r => r.Count == 0);
            }

            if (_idle == 0 || (_idle == 1 && _replicas[self].Count == 0))
            {
                return false;
            }

            for (var k = 0; k < _replicas.Length; k++)
            {
                if (k != self && _replicas[k].Count == 0 && Math.Max(_replicas[k].Now, arrival) < now)
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>When the replica's next iteration starts: now while it has work, else when the queue's head arrives (null: never).</summary>
        private double? NextStart(Replica replica) =>
            replica.Count > 0 ? replica.Now : _next < _order.Length ? Math.Max(replica.Now, _trace[_order[_next]].ArrivalMs) : null;

        private void Iterate(Replica replica, int index)
        {
            // 1. Admissions: each prefill runs alone; a request that arrives during one is admitted next, while slots last, unless
            // another replica sat idle (nothing in flight) when it arrived: that one takes it.
            var iterationStart = replica.Now;
            while (replica.Count < _maxSeqs && _next < _order.Length && _trace[_order[_next]].ArrivalMs <= replica.Now)
            {
                if (_trace[_order[_next]].ArrivalMs > iterationStart && IdleElsewhere(index, _trace[_order[_next]].ArrivalMs, replica.Now))
                {
                    break;
                }

                var id = _order[_next++];
                var request = _trace[id];
                var p = _buckets.PrefillIndex(request.InputLength);
                var a = _model.PrefillMs(p);
                if (double.IsNaN(a))
                {
                    throw new UnfittedBucketException(new BucketId(BucketKind.Prefill, _buckets.Prefill[p]));
                }

                var start = replica.Now;
                _observer?.Prefill(index, id, p, start, a);
                replica.Now += a;
                BusyMs += a;
                var first = start + _model.TtftMs(p);
                if (request.OutputLength == 1)
                {
                    Served[id] = new ServedRequest(request.ArrivalMs, start, first, replica.Now, 1, index);
                    Budget?.Admitted(Served[id]);
                    _observer?.Finished(index, id);
                    continue;
                }

                Served[id] = new ServedRequest(request.ArrivalMs, start, first, double.NaN, request.OutputLength, index);
                Budget?.Admitted(Served[id]);

                // Its k-th decode step is global step g = g0 + k - 1 and runs at length I + k + offset = v + g.
                if (replica.Count == 0 && _idle > 0)
                {
                    _idle--;
                }

                replica.Add(id, replica.Steps + request.OutputLength - 1,
                    request.InputLength + 1 + (int)_buckets.Convention - replica.Steps);
            }

            if (replica.Count == 0)
            {
                return;
            }

            // 2. Decode: a run of identical steps, up to the next event.
            var length = (int)(replica.MaxBase + replica.Steps); // at most the longest sequence
            var d = _buckets.DecodeIndex(length);
            var b = _buckets.BatchIndex(replica.Count);
            var cost = _model.StepMs(b, d);
            if (double.IsNaN(cost))
            {
                throw new UnfittedBucketException(new BucketId(BucketKind.Decode, _decodeEdges[d], _buckets.Batch[b]));
            }

            var run = Math.Min(replica.NextFinish - replica.Steps, _decodeEdges[d] - length + 1);
            if (replica.Count < _maxSeqs && _next < _order.Length)
            {
                // A waiting request is admitted at the first step boundary at or after its arrival.
                var untilArrival = Math.Ceiling((_trace[_order[_next]].ArrivalMs - replica.Now) / cost);
                run = Math.Min(run, (long)Math.Max(1, untilArrival));
            }

            _observer?.Decode(index, b, d, run, replica.Now, cost);
            replica.Now += run * cost;
            replica.Steps += run;
            DecodeSteps += run;
            BusyMs += run * cost;
            if (replica.Steps == replica.NextFinish)
            {
                foreach (var id in replica.RemoveFinished())
                {
                    Served[id] = Served[id] with { FinishMs = replica.Now };
                    Budget?.Finished(Served[id]);
                    _observer?.Finished(index, id);
                }

                if (replica.Count == 0 && _idle >= 0)
                {
                    _idle++;
                }
            }
        }
    }

    /// <summary>One replica's sequences in flight: at most max_num_seqs, so linear scans are cheap and allocate nothing.</summary>
    private sealed class Replica(int capacity)
    {
        private readonly int[] _ids = new int[capacity];
        private readonly long[] _finish = new long[capacity]; // global step count after which the sequence is done
        private readonly long[] _base = new long[capacity];     // length at global step g is base + g
        private readonly List<int> _finished = new(capacity);

        public double Now { get; set; }

        /// <summary>Decode steps this replica has run.</summary>
        public long Steps { get; set; }

        public int Count { get; private set; }

        public long MaxBase { get; private set; } = long.MinValue;

        public long NextFinish { get; private set; } = long.MaxValue;

        public void Add(int id, long finish, long lengthBase)
        {
            _ids[Count] = id;
            _finish[Count] = finish;
            _base[Count] = lengthBase;
            Count++;
            MaxBase = Math.Max(MaxBase, lengthBase);
            NextFinish = Math.Min(NextFinish, finish);
        }

        public List<int> RemoveFinished()
        {
            _finished.Clear();
            var kept = 0;
            (MaxBase, NextFinish) = (long.MinValue, long.MaxValue);
            for (var k = 0; k < Count; k++)
            {
                if (_finish[k] == Steps)
                {
                    _finished.Add(_ids[k]);
                    continue;
                }

                (_ids[kept], _finish[kept], _base[kept]) = (_ids[k], _finish[k], _base[k]);
                MaxBase = Math.Max(MaxBase, _base[kept]);
                NextFinish = Math.Min(NextFinish, _finish[kept]);
                kept++;
            }

            Count = kept;
            return _finished;
        }
    }
}
