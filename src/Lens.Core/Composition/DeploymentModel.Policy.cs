namespace Lens.Core;

/// <summary>
/// The fitted values read under the deployment's scheduling policy (method.md, "Scheduling policies"): which requests it can serve,
/// its cost cells by index (<see cref="StepCells"/>), and single-request predictions for policies other than prefill-first padded,
/// where a request alone on an idle replica is the policy's scheduler run on that one request (O(steps), not O(buckets)).
/// </summary>
public sealed partial class DeploymentModel
{
    private StepCells? _cells;
    private PolicyScheduler? _scheduler;
    private IStepCosts? _costs;

    /// <summary>The cost cells under <see cref="Policy"/>: prefill cells, then the step table row by row (the file's layout).</summary>
    public StepCells Cells => _cells ??= new StepCells(Buckets, Policy);

    /// <summary>The policy's scheduler on these buckets (the reference, step by step). Throws <see cref="ArgumentException"/> when
    /// the policy cannot run on the buckets (a chunked model whose step-table rows are not its token buckets).</summary>
    public PolicyScheduler Scheduler => _scheduler ??= PolicyScheduler.For(this);

    /// <summary>What each step costs under the policy (the fitted cells).</summary>
    public IStepCosts Costs => _costs ??= StepCosts.Of(this);

    /// <summary>Sequences in flight at most per replica: the chunked policy's <c>max_num_seqs</c>, else the largest batch bucket.</summary>
    public int MaxNumSeqs => Policy.Scheduler == SchedulerKind.Chunked ? Policy.MaxNumSeqs : Buckets.MaxBatch;

    /// <summary>The fitted cost of cell <paramref name="cell"/> (ms; NaN when unfitted).</summary>
    public double CellMs(int cell) => Cells.IsPrefill(cell) ? _a[cell] : _step[cell - Cells.PrefillCells];

    /// <summary>The standard error of cell <paramref name="cell"/>'s cost (ms).</summary>
    public double CellStandardError(int cell) => Math.Sqrt(Cells.IsPrefill(cell) ? _aVar[cell] : _stepVar[cell - Cells.PrefillCells]);

    /// <summary>The cell's name in reports (<see cref="StepCells.Name"/>).</summary>
    public string CellName(int cell) => Cells.Name(cell);

    /// <summary>
    /// Whether a request of <c>I</c> prompt and <c>O</c> output tokens can be served under the policy: null when it can, else the
    /// reason with the allowed range. Prefill-first padded: the buckets' rule (<see cref="BucketSet.CheckRequest"/>); chunked and paged:
    /// <c>I + O</c> bounded by <c>max_model_len</c> when set, else by the largest bucket, and a paged request never above the KV
    /// capacity (<see cref="PolicyScheduler.CheckRequest"/>).
    /// </summary>
    public string? CheckRequest(int inputLength, int outputLength) =>
        Policy.IsDefault ? Buckets.CheckRequest(inputLength, outputLength) : Scheduler.CheckRequest(inputLength, outputLength);

    /// <summary>Throws <see cref="RequestOutOfRangeException"/> unless <see cref="CheckRequest"/> passes.</summary>
    public void EnsureRequest(int inputLength, int outputLength)
    {
        if (CheckRequest(inputLength, outputLength) is { } reason)
        {
            throw new RequestOutOfRangeException(reason);
        }
    }

    /// <summary>Whether prefill bucket <paramref name="index"/> serves some request (an unfitted one that serves none needs no fit).</summary>
    private bool UsesPrefill(int index) =>
        Policy.Scheduler != SchedulerKind.Chunked &&
        Buckets.PrefillLowerEdge(index) + 1 < (Policy.IsDefault ? Buckets.MaxSequence : Scheduler.MaxSequence);

    private Prediction PredictByScheduler(int inputLength, int outputLength)
    {
        var alone = Alone(inputLength, outputLength);
        double e2eVariance = 0, ttftVariance = 0;
        foreach (var (cell, steps) in alone.E2e)
        {
            e2eVariance += steps * steps * (Cells.IsPrefill(cell) ? _aVar[cell] : _stepVar[cell - Cells.PrefillCells]);
        }

        foreach (var (cell, steps) in alone.Ttft)
        {
            // A prefill's TTFT has its own measured error; other steps before the first token count their cost's.
            ttftVariance += Cells.IsPrefill(cell) ? _ttftSe[cell] * _ttftSe[cell] : steps * steps * _stepVar[cell - Cells.PrefillCells];
        }

        var tpot = outputLength > 1 ? (alone.E2eMs - alone.TtftMs) / (outputLength - 1) : double.NaN;
        return WithInterval(alone.E2eMs, alone.TtftMs, tpot, e2eVariance, Math.Sqrt(ttftVariance));
    }

    private IReadOnlyList<BucketShare> BreakdownByScheduler(int inputLength, int outputLength) =>
        [.. Alone(inputLength, outputLength).E2e.Select(c => new BucketShare(Cells.Bucket(c.Cell), (int)c.Steps, c.Steps * CellMs(c.Cell)))];

    /// <summary>One request alone on an idle replica under the policy: its times and the steps of each cell before its first token and end.</summary>
    private AloneSink Alone(int inputLength, int outputLength)
    {
        var sink = new AloneSink();
        Scheduler.Run([new TraceRequest(0, inputLength, outputLength)], Costs, sink);
        return sink;
    }

    private sealed class AloneSink : IStepSink
    {
        private readonly SortedDictionary<int, long> _counts = [];

        public double TtftMs { get; private set; }

        public double E2eMs { get; private set; }

        public List<CellCount> Ttft { get; } = [];

        public List<CellCount> E2e { get; } = [];

        public void Step(ScheduledStep step)
        {
            _counts[step.Cell] = _counts.GetValueOrDefault(step.Cell) + 1;
            if (step.FirstToken.Count > 0)
            {
                TtftMs = step.FirstTokenAtMs;
                Ttft.AddRange(_counts.Select(c => new CellCount(c.Key, c.Value)));
            }

            if (step.Finished.Count > 0)
            {
                E2eMs = step.EndMs;
                E2e.AddRange(_counts.Select(c => new CellCount(c.Key, c.Value)));
            }
        }
    }
}
