namespace Lens.Core;

/// <summary>What the replicas of one simulation share: the trace, what happened to each request, and the totals.</summary>
internal sealed class ServingContext
{
    public ServingContext(DeploymentModel model, IReadOnlyList<TraceRequest> trace, int maxSeqs, IServingObserver? observer)
    {
        Model = model;
        Buckets = model.Buckets;
        Cells = model.Cells;
        Trace = trace;
        MaxSeqs = maxSeqs;
        Observer = observer;
        Served = new ServedRequest[trace.Count];
    }

    public DeploymentModel Model { get; }

    public BucketSet Buckets { get; }

    public StepCells Cells { get; }

    public IReadOnlyList<TraceRequest> Trace { get; }

    public int MaxSeqs { get; }

    public IServingObserver? Observer { get; }

    public ServedRequest[] Served { get; }

    public MissBudget? Budget { get; init; }

    /// <summary>Called with (replica, time) whenever a request emits its last token (the routed fleet's outstanding counts).</summary>
    public Action<int, double>? Finishing { get; init; }

    /// <summary>Steps of the replicas (decode steps under prefill-first; every step under chunked).</summary>
    public long DecodeSteps { get; set; }

    public double BusyMs { get; set; }

    /// <summary>The fitted cost of <paramref name="cell"/>; throws <see cref="UnfittedBucketException"/> when it has none.</summary>
    public double Cost(int cell)
    {
        var ms = Model.CellMs(cell);
        return double.IsNaN(ms) ? throw new UnfittedBucketException(Cells.Bucket(cell)) : ms;
    }

    /// <summary>Request <paramref name="id"/> started at <paramref name="startMs"/> and emitted its first token at <paramref name="firstMs"/>
    /// (done then when <c>O = 1</c>, at <paramref name="endMs"/>).</summary>
    public void FirstToken(int replica, int id, double startMs, double firstMs, double endMs)
    {
        var r = Trace[id];
        Served[id] = new ServedRequest(r.ArrivalMs, startMs, firstMs, r.OutputLength == 1 ? endMs : double.NaN, r.OutputLength, replica);
        Budget?.Admitted(Served[id]);
        if (r.OutputLength == 1)
        {
            Observer?.Finished(replica, id);
            Finishing?.Invoke(replica, endMs);
        }
    }

    /// <summary>Request <paramref name="id"/> (with decode steps) emitted its last token at <paramref name="timeMs"/>.</summary>
    public void Finished(int replica, int id, double timeMs)
    {
        Served[id] = Served[id] with { FinishMs = timeMs };
        Budget?.Finished(Served[id]);
        Observer?.Finished(replica, id);
        Finishing?.Invoke(replica, timeMs);
    }
}

/// <summary>Where a replica takes requests from: the fleet's shared queue, or its own queue behind a router.</summary>
internal interface IRequestSource
{
    /// <summary>The request this replica may admit at <paramref name="now"/> (arrived by then), or -1.</summary>
    int Peek(double now);

    /// <summary>Takes the request <see cref="Peek"/> gave.</summary>
    void Take();
}

/// <summary>
/// One replica's scheduler under one policy, as the serving simulation runs it (the fast path of <see cref="PolicyScheduler"/>'s
/// reference). Its work comes in two kinds: a step that serves the queue (a prefill-first prefill, a chunked mixed step), run one at
/// a time; and runs of identical steps (decode steps; chunked decode-only steps), planned up to the next event inside the replica
/// (a departure, a bucket crossing) and committed whole or cut short by the caller (an arrival that would be admitted).
/// </summary>
internal abstract class ReplicaScheduler(ServingContext context, int index)
{
    protected ServingContext Context { get; } = context;

    protected int Index { get; } = index;

    public double Now { get; set; }

    /// <summary>Steps this replica has run (prefill-first: decode steps; chunked: every step).</summary>
    public long Steps { get; protected set; }

    /// <summary>Slots taken: sequences in flight, partly prefilled ones included.</summary>
    public abstract int Count { get; }

    /// <summary>Whether the next step serves the queue when <paramref name="head"/> (-1: none) is its head: prefill-first, a slot (and,
    /// paged, its KV blocks) for it; chunked, a partly processed prompt or a slot for it.</summary>
    public abstract bool TakesHead(int head);

    /// <summary>Whether a request that becomes the head during a run would be admitted at the run's next step boundary.</summary>
    public abstract bool WouldAdmit(int head);

    /// <summary>Runs one step that serves the queue, taking what it admits from <paramref name="source"/>; the clock moves to its end.</summary>
    public abstract void ServeStep(IRequestSource source);

    /// <summary>Plans a run of identical steps from <see cref="Now"/> (requires <see cref="Count"/> &gt; 0 and no step serving the queue):
    /// the step's cost and the most steps before an event inside the replica.</summary>
    public abstract (double Cost, long Steps) PlanRun();

    /// <summary>Commits <paramref name="steps"/> steps (at most the planned ones) of the run planned last; the clock moves to their end.</summary>
    public abstract void CommitRun(long steps);

    /// <summary><paramref name="steps"/> identical steps of step-table cell (<paramref name="row"/>, <paramref name="column"/>) ran from
    /// <see cref="Now"/>: the observer sees them, the clock and the totals move.</summary>
    protected void Ran(int row, int column, long steps, double cost)
    {
        Context.Observer?.Decode(Index, row, column, steps, Now, cost);
        Now += steps * cost;
        Steps += steps;
        Context.DecodeSteps += steps;
        Context.BusyMs += steps * cost;
    }
}
