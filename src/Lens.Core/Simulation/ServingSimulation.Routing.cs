namespace Lens.Core;

/// <summary>How a fleet's requests reach its replicas (method.md, "Parallel layouts and cost").</summary>
public enum FleetRouting
{
    /// <summary>One first-come first-served queue that every replica takes from when it has a free slot (today's simulation).</summary>
    Shared,

    /// <summary>Each request, in arrival order, to the next replica in turn, which queues it (a Kubernetes Service in front of vLLM).</summary>
    RoundRobin,

    /// <summary>Each request, at its arrival, to the replica with the fewest requests routed to it and not finished (lowest index on
    /// ties), which queues it (load-aware routers such as llm-d's). A request that finishes at the arrival's instant counts as finished.</summary>
    LeastOutstanding,
}

/// <summary>The names of <see cref="FleetRouting"/> every front end uses (CLI option, JSON field, console choice).</summary>
public static class FleetRoutingNames
{
    /// <summary>The names, in the enum's order.</summary>
    public static IReadOnlyList<string> All { get; } = ["shared", "round-robin", "least-outstanding"];

    /// <summary>The routing named <paramref name="name"/>, or null when it names none.</summary>
    public static FleetRouting? Parse(string? name) => name switch
    {
        "shared" => FleetRouting.Shared,
        "round-robin" => FleetRouting.RoundRobin,
        "least-outstanding" => FleetRouting.LeastOutstanding,
        _ => null,
    };

    public static string Name(FleetRouting routing) => All[(int)routing];
}

public static partial class ServingSimulation
{
    /// <summary>
    /// Replicas with their own FCFS queues behind a router. Each replica runs the scheduler of <see cref="ServingSimulation"/> on what
    /// is routed to it; the router decides at each arrival, so the replicas advance together in time order. Events at one instant
    /// go in this order: replicas finish their prefill or decode run, then arrivals are routed, then replicas start their next one
    /// (so a request that arrives when a replica becomes free is admitted at once, as with the shared queue). A decode run of identical
    /// steps is planned to its next event (a departure or a bucket crossing); a request routed to the replica during the run, while a
    /// slot is free, cuts it at the first step boundary at or after its arrival, where the replica admits it.
    /// </summary>
    private sealed class RoutedFleet
    {
        private const int Finish = 0, Plan = 2;

        private readonly DeploymentModel _model;
        private readonly BucketSet _buckets;
        private readonly IReadOnlyList<TraceRequest> _trace;
        private readonly int[] _order;
        private readonly int _maxSeqs;
        private readonly FleetRouting _routing;
        private readonly int[] _decodeEdges;
        private readonly Replica[] _replicas;
        private readonly Queue<int>[] _queues;        // routed, not admitted (all have arrived)
        private readonly Queue<double>[] _finishes;   // finish times of routed requests, ascending (least outstanding only)
        private readonly int[] _outstanding;
        private readonly Activity[] _activity;
        private readonly bool[] _planned;
        private readonly PriorityQueue<(int Replica, int Kind, int Version), (double Time, int Kind, int Replica)> _events = new();

        public RoutedFleet(DeploymentModel model, IReadOnlyList<TraceRequest> trace, int[] order, int maxSeqs, int replicas, FleetRouting routing)
        {
            _model = model;
            _buckets = model.Buckets;
            _trace = trace;
            _order = order;
            _maxSeqs = maxSeqs;
            _routing = routing;
            _decodeEdges = [.. _buckets.Decode];
            _replicas = [.. Enumerable.Range(0, replicas).Select(_ => new Replica(maxSeqs))];
            _queues = [.. Enumerable.Range(0, replicas).Select(_ => new Queue<int>())];
            _finishes = [.. Enumerable.Range(0, replicas).Select(_ => new Queue<double>())];
            _outstanding = new int[replicas];
            _activity = new Activity[replicas];
            _planned = new bool[replicas];
            Served = new ServedRequest[trace.Count];
        }

        public ServedRequest[] Served { get; }

        public MissBudget? Budget { get; init; }

        public long DecodeSteps { get; private set; }

        public double BusyMs { get; private set; }

        public void Run()
        {
            var next = 0;
            while (true)
            {
                var hasEvent = _events.TryPeek(out var e, out var at);
                if (next < _order.Length && (!hasEvent || _trace[_order[next]].ArrivalMs < at.Time ||
                                             (_trace[_order[next]].ArrivalMs == at.Time && at.Kind == Plan)))
                {
                    Route(next, _order[next]);
                    next++;
                    continue;
                }

                if (!hasEvent || Budget is { Exhausted: true })
                {
                    return;
                }

                _events.Dequeue();
                if (e.Kind == Finish)
                {
                    if (e.Version == _activity[e.Replica].Version)
                    {
                        Complete(e.Replica);
                    }
                }
                else
                {
                    _planned[e.Replica] = false;
                    Start(e.Replica, at.Time);
                }
            }
        }

        private void Route(int position, int id)
        {
            var t = _trace[id].ArrivalMs;
            int r;
            if (_routing == FleetRouting.RoundRobin)
            {
                r = position % _replicas.Length;
            }
            else
            {
                r = 0;
                for (var k = 0; k < _replicas.Length; k++)
                {
                    while (_finishes[k].TryPeek(out var f) && f <= t)
                    {
                        _finishes[k].Dequeue();
                        _outstanding[k]--;
                    }

                    if (_outstanding[k] < _outstanding[r])
                    {
                        r = k;
                    }
                }
            }

            _outstanding[r]++;
            _queues[r].Enqueue(id);
            ref var act = ref _activity[r];
            var replica = _replicas[r];
            if (act.Kind == ActivityKind.Idle)
            {
                SchedulePlan(r, t);
            }
            else if (act.Kind == ActivityKind.Decode && replica.Count < _maxSeqs)
            {
                // Cut the run at the first step boundary at or after the arrival (at least one step: the run began before it).
                var steps = (long)Math.Max(1, Math.Ceiling((t - act.Start) / act.Cost));
                if (steps < act.Steps)
                {
                    act.Steps = steps;
                    act.Version++;
                    _events.Enqueue((r, Finish, act.Version), (act.Start + (steps * act.Cost), Finish, r));
                }
            }
        }

        private void SchedulePlan(int r, double time)
        {
            if (!_planned[r])
            {
                _planned[r] = true;
                _events.Enqueue((r, Plan, 0), (Math.Max(time, _replicas[r].Now), Plan, r));
            }
        }

        /// <summary>A prefill or a decode run ends: the replica's clock moves to its end and finished sequences leave.</summary>
        private void Complete(int r)
        {
            ref var act = ref _activity[r];
            var replica = _replicas[r];
            if (act.Kind == ActivityKind.Decode)
            {
                replica.Now = act.Start + (act.Steps * act.Cost);
                replica.Steps += act.Steps;
                DecodeSteps += act.Steps;
                BusyMs += act.Steps * act.Cost;
                if (replica.Steps == replica.NextFinish)
                {
                    foreach (var id in replica.RemoveFinished())
                    {
                        Served[id] = Served[id] with { FinishMs = replica.Now };
                        Budget?.Finished(Served[id]);
                        RecordFinish(r, replica.Now);
                    }
                }
            }

            act.Kind = ActivityKind.Idle;
            act.Version++;
            SchedulePlan(r, replica.Now);
        }

        private void RecordFinish(int r, double time)
        {
            if (_routing == FleetRouting.LeastOutstanding)
            {
                _finishes[r].Enqueue(time);
            }
        }

        /// <summary>The replica's next iteration step at <paramref name="time"/>: admit one queued request while a slot is free
        /// (its prefill runs alone), else a run of identical decode steps up to the next departure or bucket crossing.</summary>
        private void Start(int r, double time)
        {
            var replica = _replicas[r];
            replica.Now = Math.Max(replica.Now, time);
            ref var act = ref _activity[r];
            if (replica.Count < _maxSeqs && _queues[r].TryDequeue(out var id))
            {
                var request = _trace[id];
                var p = _buckets.PrefillIndex(request.InputLength);
                var a = _model.PrefillMs(p);
                if (double.IsNaN(a))
                {
                    throw new UnfittedBucketException(new BucketId(BucketKind.Prefill, _buckets.Prefill[p]));
                }

                var start = replica.Now;
                var end = start + a;
                BusyMs += a;
                var first = start + _model.TtftMs(p);
                if (request.OutputLength == 1)
                {
                    Served[id] = new ServedRequest(request.ArrivalMs, start, first, end, 1, r);
                    Budget?.Admitted(Served[id]);
                    RecordFinish(r, end);
                }
                else
                {
                    Served[id] = new ServedRequest(request.ArrivalMs, start, first, double.NaN, request.OutputLength, r);
                    Budget?.Admitted(Served[id]);
                    replica.Add(id, replica.Steps + request.OutputLength - 1,
                        request.InputLength + 1 + (int)_buckets.Convention - replica.Steps);
                }

                replica.Now = end;
                act = new Activity(ActivityKind.Prefill, start, a, 1, act.Version + 1);
                _events.Enqueue((r, Finish, act.Version), (end, Finish, r));
                return;
            }

            if (replica.Count == 0)
            {
                return;
            }

            var length = (int)(replica.MaxBase + replica.Steps);
            var d = _buckets.DecodeIndex(length);
            var b = _buckets.BatchIndex(replica.Count);
            var cost = _model.StepMs(b, d);
            if (double.IsNaN(cost))
            {
                throw new UnfittedBucketException(new BucketId(BucketKind.Decode, _decodeEdges[d], _buckets.Batch[b]));
            }

            var run = Math.Min(replica.NextFinish - replica.Steps, _decodeEdges[d] - length + 1);
            act = new Activity(ActivityKind.Decode, replica.Now, cost, run, act.Version + 1);
            _events.Enqueue((r, Finish, act.Version), (replica.Now + (run * cost), Finish, r));
        }
    }

    private enum ActivityKind
    {
        Idle,
        Prefill,
        Decode,
    }

    /// <summary>What a replica is doing: a prefill or a run of <see cref="Steps"/> decode steps of <see cref="Cost"/> ms from
    /// <see cref="Start"/>. <see cref="Version"/> tells a cut run's old end event from its new one.</summary>
    private struct Activity(ActivityKind kind, double start, double cost, long steps, int version)
    {
        public ActivityKind Kind = kind;
        public double Start = start;
        public double Cost = cost;
        public long Steps = steps;
        public int Version = version;
    }
}
