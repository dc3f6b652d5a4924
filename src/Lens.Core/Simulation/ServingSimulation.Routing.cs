namespace Lens.Core;

/// <summary>How a fleet's requests reach its replicas (method.md, "Parallel layouts and cost").</summary>
public enum FleetRouting
{
    /// <summary>One first-come first-served queue: its head goes to the replica that first reaches a step boundary at or after its
    /// arrival with a free slot (an idle replica: the arrival itself; ties: the lower replica index).</summary>
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
    /// Replicas with their own FCFS queues behind a router. Each replica runs the policy's replica scheduler (the same one as the shared
    /// queue) on what is routed to it; the router decides at each arrival, so the replicas advance together in time order. Events at
    /// one instant go in this order: replicas finish their step or run, then arrivals are routed, then replicas start their next one
    /// (so a request that arrives when a replica becomes free is admitted at once, as with the shared queue). A run of identical steps
    /// is planned to its next event (a departure or a bucket crossing); a request routed to the replica during the run, when the
    /// replica would admit its queue's head, cuts it at the first step boundary at or after its arrival, where the replica admits it.
    /// </summary>
    private sealed class RoutedFleet
    {
        private const int Finish = 0, Plan = 2;

        private readonly IReadOnlyList<TraceRequest> _trace;
        private readonly int[] _order;
        private readonly FleetRouting _routing;
        private readonly ReplicaScheduler[] _replicas;
        private readonly OwnQueue[] _queues;          // routed, not admitted (all have arrived)
        private readonly Queue<double>[] _finishes;   // finish times of routed requests, ascending (least outstanding only)
        private readonly int[] _outstanding;
        private readonly Activity[] _activity;
        private readonly bool[] _planned;
        private readonly PriorityQueue<(int Replica, int Kind, int Version), (double Time, int Kind, int Replica)> _events = new();

        public RoutedFleet(DeploymentModel model, IReadOnlyList<TraceRequest> trace, int[] order, int maxSeqs, int replicas, FleetRouting routing,
            MissBudget? budget)
        {
            _trace = trace;
            _order = order;
            _routing = routing;
            _finishes = [.. Enumerable.Range(0, replicas).Select(_ => new Queue<double>())];
            Context = new ServingContext(model, trace, maxSeqs, null) { Budget = budget, Finishing = RecordFinish };
            _replicas = [.. Enumerable.Range(0, replicas).Select(r => CreateReplica(Context, r))];
            _queues = [.. Enumerable.Range(0, replicas).Select(_ => new OwnQueue())];
            _outstanding = new int[replicas];
            _activity = new Activity[replicas];
            _planned = new bool[replicas];
        }

        public ServingContext Context { get; }

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

                if (!hasEvent || Context.Budget is { Exhausted: true })
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
            if (act.Kind == ActivityKind.Idle)
            {
                SchedulePlan(r, t);
            }
            else if (act.Kind == ActivityKind.Run && _replicas[r].WouldAdmit(_queues[r].Head))
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

        /// <summary>A step or a run ends: the replica's clock moves to its end and finished sequences leave.</summary>
        private void Complete(int r)
        {
            ref var act = ref _activity[r];
            var replica = _replicas[r];
            if (act.Kind == ActivityKind.Run)
            {
                replica.CommitRun(act.Steps);
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

        /// <summary>The replica's next work at <paramref name="time"/>: a step that serves its queue (a prefill of its head; a chunked
        /// step with prompt tokens), else a run of identical steps up to the next departure or bucket crossing.</summary>
        private void Start(int r, double time)
        {
            var replica = _replicas[r];
            replica.Now = Math.Max(replica.Now, time);
            ref var act = ref _activity[r];
            if (replica.TakesHead(_queues[r].Head))
            {
                var start = replica.Now;
                replica.ServeStep(_queues[r]);
                act = new Activity(ActivityKind.Step, start, replica.Now - start, 1, act.Version + 1);
                _events.Enqueue((r, Finish, act.Version), (replica.Now, Finish, r));
                return;
            }

            if (replica.Count == 0)
            {
                return;
            }

            var (cost, run) = replica.PlanRun();
            if (run < 1)
            {
                throw new InvalidOperationException($"replica {r} planned a run of {run} steps: the simulation would not advance");
            }

            act = new Activity(ActivityKind.Run, replica.Now, cost, run, act.Version + 1);
            _events.Enqueue((r, Finish, act.Version), (replica.Now + (run * cost), Finish, r));
        }
    }

    /// <summary>A replica's own queue behind the router: everything in it has arrived.</summary>
    private sealed class OwnQueue : IRequestSource
    {
        private readonly Queue<int> _ids = new();

        /// <summary>The request at its head, or -1.</summary>
        public int Head => _ids.TryPeek(out var id) ? id : -1;

        public void Enqueue(int id) => _ids.Enqueue(id);

        public int Peek(double now) => Head;

        public void Take() => _ids.Dequeue();
    }

    private enum ActivityKind
    {
        Idle,
        Step,
        Run,
    }

    /// <summary>What a replica is doing: a step serving its queue, or a run of <see cref="Steps"/> identical steps of <see cref="Cost"/> ms
    /// from <see cref="Start"/>. <see cref="Version"/> tells a cut run's old end event from its new one.</summary>
    private struct Activity(ActivityKind kind, double start, double cost, long steps, int version)
    {
        public ActivityKind Kind = kind;
        public double Start = start;
        public double Cost = cost;
        public long Steps = steps;
        public int Version = version;
    }
}
