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
    private const int MaxPhases = 4096; // block sizes up to this keep the batch's blocks and phases incrementally; above, a scan per run

    private readonly long[] _untilBlock;
    private readonly PhaseCounts? _phases;
    private long _blocks; // with _phases: the batch's KV blocks at the next step, sum of ceil((base + Steps) / block_size)
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
        _untilBlock = _paged && _blockSize > MaxPhases ? new long[context.MaxSeqs] : [];
        _phases = _paged && _blockSize <= MaxPhases ? new PhaseCounts(_blockSize) : null;
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
            var lengthBase = request.InputLength + 1 + (int)Context.Buckets.Convention - Steps;
            _flight.Add(id, Steps + request.OutputLength - 1, lengthBase, _paged ? Need(id) : 0);
            if (_phases is not null)
            {
                _blocks += BlocksAt(lengthBase);
                _phases.Add(Phase(lengthBase), 1);
            }
        }
    }

    public override (double Cost, long Steps) PlanRun()
    {
        long run;
        if (_phases is not null)
        {
            // Each sequence gains a block every block_size steps: with slack blocks under the bucket's edge, the sum first exceeds it
            // after (slack / n) full cycles plus the (slack mod n)-th smallest steps-until-next-block.
            var n = _flight.Count;
            _column = Context.Buckets.DecodeIndex((int)_blocks);
            var slack = _decodeEdges[_column] - _blocks;
            run = Math.Min(_flight.NextFinish - Steps, ((slack / n) * _blockSize) + SmallestUntil((int)(slack % n)));
        }
        else if (_paged)
        {
            long blocks = 0;
            var n = _flight.Count;
            for (var k = 0; k < n; k++)
            {
                var length = _flight.BaseAt(k) + Steps;
                blocks += (length + _blockSize - 1) / _blockSize;
                _untilBlock[k] = _blockSize - ((length - 1) % _blockSize); // steps until its next block, 1..block_size
            }

            _column = Context.Buckets.DecodeIndex((int)blocks);
            var slack = _decodeEdges[_column] - blocks;
            Array.Sort(_untilBlock, 0, n);
            run = Math.Min(_flight.NextFinish - Steps, ((slack / n) * _blockSize) + _untilBlock[(int)(slack % n)]);
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
        if (_phases is not null)
        {
            _blocks += ((steps / _blockSize) * _flight.Count) + CountUntilAtMost((int)(steps % _blockSize));
        }

        Ran(_row, _column, steps, _cost);
        if (Steps == _flight.NextFinish)
        {
            foreach (var id in _flight.RemoveFinished(Steps))
            {
                Context.Finished(Index, id, Now);
            }

            if (_phases is not null)
            {
                foreach (var lengthBase in _flight.FinishedBases)
                {
                    _blocks -= BlocksAt(lengthBase);
                    _phases.Add(Phase(lengthBase), -1);
                }
            }
        }
    }

    /// <summary>KV blocks of a sequence of this base at the next step.</summary>
    private long BlocksAt(long lengthBase) => (lengthBase + Steps + _blockSize - 1) / _blockSize;

    /// <summary>A sequence's fixed phase: at step g its steps until the next block are <c>block_size - (phase + g) mod block_size</c>.</summary>
    private int Phase(long lengthBase) => (int)((((lengthBase - 1) % _blockSize) + _blockSize) % _blockSize);

    /// <summary>Sequences whose next block comes within <paramref name="steps"/> steps (0..block_size) from the next step: those whose
    /// phase lies in the cyclic range of <paramref name="steps"/> phases ending at <c>(-1 - Steps) mod block_size</c>.</summary>
    private int CountUntilAtMost(int steps)
    {
        if (steps <= 0)
        {
            return 0;
        }

        var shift = (int)(Steps % _blockSize);
        var hi = (((_blockSize - 1 - shift) % _blockSize) + _blockSize) % _blockSize;
        var lo = (((hi - steps + 1) % _blockSize) + _blockSize) % _blockSize;
        return lo <= hi ? _phases!.Range(lo, hi) : _phases!.Range(lo, _blockSize - 1) + _phases.Range(0, hi);
    }

    /// <summary>The (<paramref name="rank"/> + 1)-th smallest steps-until-next-block among the sequences in flight. A sequence of phase
    /// <c>p</c> is <c>hi + 1 - p</c> steps from its next block for <c>p &lt;= hi</c>, else <c>hi + 1 + block_size - p</c>, with
    /// <c>hi = (-1 - Steps) mod block_size</c>: phases <c>hi, hi - 1, ..., 0, block_size - 1, ..., hi + 1</c> in that order.</summary>
    private long SmallestUntil(int rank)
    {
        var hi = (int)((((_blockSize - 1 - (Steps % _blockSize)) % _blockSize) + _blockSize) % _blockSize);
        var first = _phases!.Range(0, hi); // phases 0..hi come first
        return rank < first
            ? hi + 1 - _phases.LargestWithPrefixAtMost(first - rank - 1)
            : hi + 1 + _blockSize - _phases.LargestWithPrefixAtMost(_flight.Count - rank + first - 1);
    }

    private int Need(int id)
    {
        var r = Context.Trace[id];
        return (int)(((long)r.InputLength + r.OutputLength + _blockSize - 1) / _blockSize);
    }

    /// <summary>Counts of sequences per phase (a Fenwick tree): O(log block_size) to add one or count a range.</summary>
    private sealed class PhaseCounts(int size)
    {
        private readonly int[] _tree = new int[size + 1];

        public void Add(int phase, int delta)
        {
            for (var k = phase + 1; k < _tree.Length; k += k & -k)
            {
                _tree[k] += delta;
            }
        }

        /// <summary>The largest <c>p</c> in <c>0..size</c> with at most <paramref name="count"/> sequences of phase below <c>p</c>.</summary>
        public int LargestWithPrefixAtMost(int count)
        {
            var position = 0;
            for (var step = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)_tree.Length) >> 1; step > 0; step >>= 1)
            {
                if (position + step < _tree.Length && _tree[position + step] <= count)
                {
                    position += step;
                    count -= _tree[position];
                }
            }

            return position;
        }

        /// <summary>Sequences with a phase in <c>[from, to]</c>.</summary>
        public int Range(int from, int to) => Prefix(to + 1) - Prefix(from);

        private int Prefix(int count)
        {
            var sum = 0;
            for (var k = count; k > 0; k -= k & -k)
            {
                sum += _tree[k];
            }

            return sum;
        }
    }
}
