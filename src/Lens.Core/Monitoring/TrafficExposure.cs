namespace Lens.Core;

/// <summary>
/// The cost cells of a deployment, numbered once: prefill bucket <c>p</c> is cell <c>p</c>, decode cell (batch index <c>b</c>,
/// decode index <c>d</c>) is <c>P + b * D + d</c>.
/// </summary>
public sealed class CostCells
{
    public CostCells(DeploymentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        Prefill = model.Buckets.Prefill.Length;
        Decode = model.Buckets.Decode.Length;
        Count = Prefill + (model.Buckets.Batch.Length * Decode);
    }

    public DeploymentModel Model { get; }

    public int Prefill { get; }

    public int Decode { get; }

    public int Count { get; }

    public int OfDecode(int batchIndex, int decodeIndex) => Prefill + (batchIndex * Decode) + decodeIndex;

    /// <summary>The bucket a cell is (a prefill bucket, or a decode bucket with its batch bucket).</summary>
    public BucketId Id(int cell)
    {
        var buckets = Model.Buckets;
        if (cell < Prefill)
        {
            return new BucketId(BucketKind.Prefill, buckets.Prefill[cell]);
        }

        var k = cell - Prefill;
        return new BucketId(BucketKind.Decode, buckets.Decode[k % Decode], buckets.Batch[k / Decode]);
    }

    /// <summary>The cell's fitted cost in the model: <c>A[p]</c> or <c>S[B, D]</c> (ms).</summary>
    public double Cost(int cell) => cell < Prefill ? Model.PrefillMs(cell) : Model.StepMs((cell - Prefill) / Decode, (cell - Prefill) % Decode);

    /// <summary>The cell's relative standard error from its profile (0 when unknown).</summary>
    public double RelativeFitError(int cell)
    {
        if (cell < Prefill)
        {
            var p = Model.PrefillBuckets[cell];
            return p.IsFitted && p.AMs > 0 ? p.AStandardError / p.AMs : 0;
        }

        var d = Model.DecodeBuckets[cell - Prefill];
        return d.IsFitted && d.StepMs > 0 ? d.StepStandardError / d.StepMs : 0;
    }
}

/// <summary>A sparse row of a request's exposure: cell indexes and the ms of (reference) cost of each.</summary>
public readonly record struct ExposureRow(int[] Cells, double[] Ms)
{
    /// <summary>
    /// This row less <paramref name="part"/> (both with cells in increasing order, as the recorder writes them): the exposure of the
    /// part of a latency after another, such as a request's decode time (E2E less TTFT). Entries that cancel are left out.
    /// </summary>
    public ExposureRow Minus(ExposureRow part)
    {
        var left = new double[Cells.Length];
        var kept = 0;
        for (int i = 0, j = 0; i < Cells.Length; i++)
        {
            while (j < part.Cells.Length && part.Cells[j] < Cells[i])
            {
                j++;
            }

            left[i] = Ms[i] - (j < part.Cells.Length && part.Cells[j] == Cells[i] ? part.Ms[j] : 0);
            kept += left[i] > 1e-9 * Ms[i] ? 1 : 0;
        }

        var cells = new int[kept];
        var ms = new double[kept];
        for (int i = 0, k = 0; i < Cells.Length; i++)
        {
            if (left[i] > 1e-9 * Ms[i])
            {
                (cells[k], ms[k]) = (Cells[i], left[i]);
                k++;
            }
        }

        return new ExposureRow(cells, ms);
    }
}

/// <summary>
/// Records, while a serving simulation runs, what each request's TTFT and E2E are made of (method.md, "Live traffic"): the steps of
/// each cell its replica ran between the request's arrival and its first token, and its end. The step running when it arrived counts
/// for the part after the arrival. Row entries are <c>steps * the cell's reference cost</c> (ms): how much the request's latency grows
/// when that cell's cost grows by a given fraction, at the replayed schedule. Time and memory are linear in the requests times the
/// cells each one waits through, plus the steps a waiting request looks back over.
/// </summary>
internal sealed class ExposureRecorder : IServingObserver
{
    private readonly CostCells _cells;
    private readonly double[] _reference;      // ms per step of each cell, for the rows (the profile's costs)
    private readonly double[] _ttftReference;  // a request's own TTFT offset per prefill cell
    private readonly IReadOnlyList<TraceRequest> _trace;
    private readonly List<Run>[] _log;         // per replica: every run, in time order
    private readonly double[][] _cum;          // per replica: reference ms of each cell since the start
    private readonly Dictionary<int, (double[] Wait, double[] CumAtStart)> _inFlight = [];

    public ExposureRecorder(CostCells cells, IReadOnlyList<TraceRequest> trace, int replicas)
    {
        _cells = cells;
        _trace = trace;
        _reference = [.. Enumerable.Range(0, cells.Count).Select(cells.Cost)];
        _ttftReference = [.. Enumerable.Range(0, cells.Prefill).Select(cells.Model.TtftMs)];
        _log = [.. Enumerable.Range(0, replicas).Select(_ => new List<Run>())];
        _cum = [.. Enumerable.Range(0, replicas).Select(_ => new double[cells.Count])];
        Ttft = new ExposureRow[trace.Count];
        E2e = new ExposureRow[trace.Count];
        Steps = new long[cells.Count];
    }

    public ExposureRow[] Ttft { get; }

    public ExposureRow[] E2e { get; }

    /// <summary>Steps of each cell the window ran (a prefill counts one).</summary>
    public long[] Steps { get; }

    public void Prefill(int replica, int request, int prefillIndex, double startMs, double ms)
    {
        var wait = Waited(replica, request);
        var ttft = (double[])wait.Clone();
        ttft[prefillIndex] += _ttftReference[prefillIndex];
        Ttft[request] = Sparse(ttft);
        wait[prefillIndex] += _reference[prefillIndex];
        Record(replica, prefillIndex, 1, startMs, ms);
        _inFlight[request] = (wait, (double[])_cum[replica].Clone());
    }

    /// <summary>Chunked: what it waited through until admitted; its steps from there are counted as they run.</summary>
    public void Admitted(int replica, int request, double startMs) => _inFlight[request] = (Waited(replica, request), (double[])_cum[replica].Clone());

    /// <summary>Chunked: its TTFT is what it waited through and every step since its admission, the one that completed its prompt included.</summary>
    public void FirstToken(int replica, int request)
    {
        var (wait, cumAtStart) = _inFlight[request];
        var cum = _cum[replica];
        var ttft = (double[])wait.Clone();
        for (var c = 0; c < ttft.Length; c++)
        {
            ttft[c] += cum[c] - cumAtStart[c];
        }

        Ttft[request] = Sparse(ttft);
    }

    public void Decode(int replica, int batchIndex, int decodeIndex, long steps, double startMs, double stepMs) =>
        Record(replica, _cells.OfDecode(batchIndex, decodeIndex), steps, startMs, stepMs);

    public void Finished(int replica, int request)
    {
        var (total, cumAtStart) = _inFlight[request];
        _inFlight.Remove(request);
        var cum = _cum[replica];
        for (var c = 0; c < total.Length; c++)
        {
            total[c] += cum[c] - cumAtStart[c];
        }

        E2e[request] = Sparse(total);
    }

    /// <summary>What a request waited through before its first step: the runs on its replica that ended after it arrived (the one it
    /// arrived in, in part).</summary>
    private double[] Waited(int replica, int request)
    {
        var wait = new double[_cells.Count];
        var arrival = _trace[request].ArrivalMs;
        var log = _log[replica];
        for (var k = log.Count - 1; k >= 0 && log[k].EndMs > arrival; k--)
        {
            var run = log[k];
            var steps = run.StartMs >= arrival ? run.Steps : (run.EndMs - arrival) / run.StepMs;
            wait[run.Cell] += steps * _reference[run.Cell];
        }

        return wait;
    }

    private void Record(int replica, int cell, long steps, double startMs, double stepMs)
    {
        _log[replica].Add(new Run(cell, steps, startMs, stepMs));
        _cum[replica][cell] += steps * _reference[cell];
        Steps[cell] += steps;
    }

    private static ExposureRow Sparse(double[] dense)
    {
        var n = 0;
        foreach (var v in dense)
        {
            n += v > 0 ? 1 : 0;
        }

        var cells = new int[n];
        var ms = new double[n];
        for (int c = 0, k = 0; c < dense.Length; c++)
        {
            if (dense[c] > 0)
            {
                (cells[k], ms[k]) = (c, dense[c]);
                k++;
            }
        }

        return new ExposureRow(cells, ms);
    }

    private readonly record struct Run(int Cell, long Steps, double StartMs, double StepMs)
    {
        public double EndMs => StartMs + (Steps * StepMs);
    }
}
