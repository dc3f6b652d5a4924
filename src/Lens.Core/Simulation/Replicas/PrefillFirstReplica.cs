namespace Lens.Core;

/// <summary>
/// The prefill-first scheduler on one replica (method.md, "Batched serving"), padded or paged: each prefill runs alone at
/// <c>A[pre(I)]</c>; a decode step runs everyone in flight at <c>(bat(n), column)</c>, the column being the decode bucket of the longest
/// sequence after the append (padded) or the block bucket of the batch's KV blocks <c>sum ceil(len / block_size)</c> (paged). Paged
/// admission needs the request's whole <c>ceil((I + O) / block_size)</c> blocks free beside those reserved.
/// A run of identical steps ends at the next departure or column change. Padded: the column changes when the longest length crosses
/// its bucket's edge. Paged: each sequence gains one block every <c>block_size</c> steps, at its own phase, so the batch gains exactly
/// <c>n</c> blocks per <c>block_size</c> steps; with <c>slack</c> blocks left under the bucket's edge the sum first exceeds it after
/// <c>(slack / n) * block_size + t[slack mod n]</c> steps, <c>t</c> being the sorted steps until each sequence's next block.
/// </summary>
internal sealed class PrefillFirstReplica : ReplicaScheduler
{
    private readonly FlightSet _flight;
    private readonly int[] _decodeEdges;
    private readonly bool _paged;
    private readonly int _blockSize;
    private readonly long _capacity;
    private const int MaxHistogram = 4096; // block sizes up to this count steps-until-next-block in a histogram

    private readonly long[] _untilBlock;
    private readonly int[] _phases;
    private int _row, _column;
    private double _cost;

    public PrefillFirstReplica(ServingContext context, int index)
        : base(context, index)
    {
        _flight = new FlightSet(context.MaxSeqs);
        _decodeEdges = [.. context.Buckets.Decode];
        _paged = context.Model.Policy.Execution == ExecutionKind.Paged;
        _blockSize = Math.Max(1, context.Model.Policy.BlockSize);
        _capacity = _paged ? context.Model.Scheduler.KvCapacityBlocks : long.MaxValue;
        _untilBlock = _paged && _blockSize > MaxHistogram ? new long[context.MaxSeqs] : [];
        _phases = _paged && _blockSize <= MaxHistogram ? new int[_blockSize + 1] : [];
    }

    public override int Count => _flight.Count;

    public override bool TakesHead(int head) => head >= 0 && WouldAdmit(head);

    public override bool WouldAdmit(int head) => _flight.Count < Context.MaxSeqs && (!_paged || _flight.Reserved + Need(head) <= _capacity);

    public override void ServeStep(IRequestSource source)
    {
        var id = source.Peek(Now);
        source.Take();
        var request = Context.Trace[id];
        var p = Context.Buckets.PrefillIndex(request.InputLength);
        var a = Context.Cost(Context.Cells.Prefill(p));
        var start = Now;
        Context.Observer?.Prefill(Index, id, p, start, a);
        Now += a;
        Context.BusyMs += a;
        Context.FirstToken(Index, id, start, start + Context.Model.TtftMs(p), Now);
        if (request.OutputLength > 1)
        {
            // Its k-th decode step is replica step g = g0 + k - 1 and runs at length I + k + offset = base + g.
            _flight.Add(id, Steps + request.OutputLength - 1, request.InputLength + 1 + (int)Context.Buckets.Convention - Steps,
                _paged ? Need(id) : 0);
        }
    }

    public override (double Cost, long Steps) PlanRun()
    {
        long run;
        if (_paged)
        {
            long blocks = 0;
            var n = _flight.Count;
            var histogram = _blockSize <= MaxHistogram;
            if (histogram)
            {
                Array.Clear(_phases);
            }

            for (var k = 0; k < n; k++)
            {
                var length = _flight.BaseAt(k) + Steps;
                blocks += (length + _blockSize - 1) / _blockSize;
                var until = _blockSize - ((length - 1) % _blockSize); // steps until its next block, 1..block_size
                if (histogram)
                {
                    _phases[until]++;
                }
                else
                {
                    _untilBlock[k] = until;
                }
            }

            _column = Context.Buckets.DecodeIndex((int)blocks);
            var slack = _decodeEdges[_column] - blocks;
            run = Math.Min(_flight.NextFinish - Steps, ((slack / n) * _blockSize) + KthSmallest((int)(slack % n), n, histogram));
        }
        else
        {
            var length = (int)(_flight.MaxBase + Steps); // the longest sequence
            _column = Context.Buckets.DecodeIndex(length);
            run = Math.Min(_flight.NextFinish - Steps, _decodeEdges[_column] - length + 1);
        }

        _row = Context.Buckets.BatchIndex(_flight.Count);
        _cost = Context.Cost(Context.Cells.Step(_row, _column));
        return (_cost, run);
    }

    public override void CommitRun(long steps)
    {
        Context.Observer?.Decode(Index, _row, _column, steps, Now, _cost);
        Now += steps * _cost;
        Steps += steps;
        Context.DecodeSteps += steps;
        Context.BusyMs += steps * _cost;
        if (Steps == _flight.NextFinish)
        {
            foreach (var id in _flight.RemoveFinished(Steps))
            {
                Context.Finished(Index, id, Now);
            }
        }
    }

    /// <summary>The <paramref name="rank"/>-th smallest (0-based) steps-until-next-block: counted over 1..block_size when the block is
    /// small, else sorted.</summary>
    private long KthSmallest(int rank, int n, bool histogram)
    {
        if (!histogram)
        {
            Array.Sort(_untilBlock, 0, n);
            return _untilBlock[rank];
        }

        for (int until = 1, seen = 0; ; until++)
        {
            seen += _phases[until];
            if (seen > rank)
            {
                return until;
            }
        }
    }

    private int Need(int id)
    {
        var r = Context.Trace[id];
        return (int)(((long)r.InputLength + r.OutputLength + _blockSize - 1) / _blockSize);
    }
}
