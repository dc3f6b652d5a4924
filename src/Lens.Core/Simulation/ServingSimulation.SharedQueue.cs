namespace Lens.Core;

public static partial class ServingSimulation
{
    /// <summary>
    /// One first-come first-served queue that the replicas take from at their step boundaries. The request at the queue's head goes
    /// to the replica that first reaches a step boundary at or after its arrival with room for it (a free slot; paged: its KV blocks
    /// beside those reserved): the end of a prefill or of a decode step (chunked: of any step; it joins the next one), or the arrival
    /// itself for a replica with nothing in flight. Replicas at a boundary at the same instant take in replica index order, each
    /// seeing the queue as the ones before it left it. A replica in a run of identical steps that would admit the head has its run cut
    /// at its first boundary at or after the later of the head's arrival and the time the request became the head; if another replica
    /// took it first, the replica goes on with a new run from there (the same cell: runs split, times unchanged).
    /// </summary>
    private sealed class SharedQueue : IRequestSource
    {
        private readonly IReadOnlyList<TraceRequest> _trace;
        private readonly int[] _order;
        private readonly ReplicaScheduler[] _replicas;
        private readonly Activity[] _activity;
        private readonly PriorityQueue<(int Replica, int Version), (double Time, int Replica)> _events = new();
        private int _next; // head of the FCFS queue, an index into _order

        public SharedQueue(ServingContext context, int[] order, int replicas)
        {
            Context = context;
            _trace = context.Trace;
            _order = order;
            _replicas = [.. Enumerable.Range(0, replicas).Select(r => CreateReplica(context, r))];
            _activity = new Activity[replicas];
        }

        public ServingContext Context { get; }

        public void Run()
        {
            for (var r = 0; r < _replicas.Length; r++)
            {
                Wake(r, 0);
            }

            // Boundaries in time order (ties: the lower replica index); each replica has one live event, older versions are stale.
            while (_events.TryDequeue(out var e, out var at))
            {
                if (Context.Budget is { Exhausted: true })
                {
                    return;
                }

                if (e.Version == _activity[e.Replica].Version)
                {
                    Boundary(e.Replica, at.Time);
                }
            }
        }

        /// <summary>The queue's head if it arrived by <paramref name="now"/>, else -1.</summary>
        public int Peek(double now) => _next < _order.Length && _trace[_order[_next]].ArrivalMs <= now ? _order[_next] : -1;

        public void Take() => _next++;

        /// <summary>Replica <paramref name="r"/> is at a step boundary at <paramref name="time"/>: its run (if any) ends; it serves the
        /// queue's head if it arrived and there is room, else runs identical steps, else waits idle.</summary>
        private void Boundary(int r, double time)
        {
            var replica = _replicas[r];
            ref var act = ref _activity[r];
            if (act.Kind == ActivityKind.Run)
            {
                replica.CommitRun(act.Steps);
            }

            replica.Now = Math.Max(replica.Now, time);
            var head = _next;
            if (replica.TakesHead(Peek(replica.Now)))
            {
                var start = replica.Now;
                replica.ServeStep(this);
                act = new Activity(ActivityKind.Step, start, replica.Now - start, 1, act.Version + 1);
                _events.Enqueue((r, act.Version), (replica.Now, r));
                if (_next != head)
                {
                    HeadMoved(r, start);
                }

                return;
            }

            if (replica.Count == 0)
            {
                act.Kind = ActivityKind.Idle;
                Wake(r, replica.Now);
                return;
            }

            var (cost, run) = replica.PlanRun();
            if (run < 1)
            {
                throw new InvalidOperationException($"replica {r} planned a run of {run} steps: the simulation would not advance");
            }

            act = new Activity(ActivityKind.Run, replica.Now, cost, run, act.Version + 1);
            act.Steps = Math.Min(run, StepsToHead(r, replica.Now));
            _events.Enqueue((r, act.Version), (act.Start + (act.Steps * act.Cost), r));
        }

        /// <summary>The queue's head moved at <paramref name="time"/> (replica <paramref name="self"/> took requests): the other replicas
        /// look at the new head; idle ones wake at its arrival, runs that would admit it are cut at their first boundary for it.</summary>
        private void HeadMoved(int self, double time)
        {
            for (var r = 0; r < _replicas.Length; r++)
            {
                ref var act = ref _activity[r];
                if (r == self || act.Kind == ActivityKind.Step)
                {
                    continue;
                }

                if (act.Kind == ActivityKind.Idle)
                {
                    Wake(r, time);
                }
                else if (StepsToHead(r, time) is var steps && steps < act.Steps)
                {
                    act.Steps = steps;
                    act.Version++;
                    _events.Enqueue((r, act.Version), (act.Start + (steps * act.Cost), r));
                }
            }
        }

        /// <summary>Steps of replica <paramref name="r"/>'s run (planned from its start) to its first boundary at or after both the head's
        /// arrival and <paramref name="time"/>, at least one; <see cref="long.MaxValue"/> when it would not admit the head or there is none.</summary>
        private long StepsToHead(int r, double time)
        {
            if (_next >= _order.Length || !_replicas[r].WouldAdmit(_order[_next]))
            {
                return long.MaxValue;
            }

            ref readonly var act = ref _activity[r];
            var from = Math.Max(_trace[_order[_next]].ArrivalMs, time);
            return (long)Math.Max(1, Math.Ceiling((from - act.Start) / act.Cost));
        }

        /// <summary>An idle replica waits for the queue's head: it wakes at the later of its arrival and <paramref name="time"/> if it
        /// would admit it (a newer wake replaces an older one).</summary>
        private void Wake(int r, double time)
        {
            ref var act = ref _activity[r];
            act.Version++;
            if (_next < _order.Length && _replicas[r].WouldAdmit(_order[_next]))
            {
                _events.Enqueue((r, act.Version), (Math.Max(Math.Max(_trace[_order[_next]].ArrivalMs, time), _replicas[r].Now), r));
            }
        }
    }
}
