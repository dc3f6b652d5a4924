using System.Diagnostics;
using Lens.Core;

namespace Lens.Engine;

/// <summary>One row of a decode step the scheduler asks for: in, the sequence's slot and its next input; out, its token.</summary>
internal struct DecodeRow
{
    /// <summary><see cref="Token"/> of a prompt row whose token is the engine's synthetic prompt token at <see cref="Position"/>.</summary>
    public const int SyntheticPrompt = -1;

    /// <summary>The sequence's KV slot.</summary>
    public int Slot;

    /// <summary>Its prompt length <c>I</c>.</summary>
    public int InputLength;

    /// <summary>The position of the input token: <c>I + k - 1</c> at step <c>k</c>.</summary>
    public int Position;

    /// <summary>The input token (or <see cref="SyntheticPrompt"/>); after the step, the token generated from this row.</summary>
    public int Token;

    /// <summary>After the step: whether the row's cache was copied into the step's bucket (not counting its first step's hand-off).</summary>
    public bool CacheMoved;
}

/// <summary>What a prefill the scheduler asked for gave: the first token, the padded length computed, the time its slowdown added.</summary>
internal readonly record struct PrefillOutcome(int Token, int PaddedLength, double SlowdownMs);

/// <summary>
/// Runs the steps a scheduler decides (vLLM's worker: the cache engine and the model runner together). The scheduler never
/// touches buffers or math; tests give it a fake that records the calls.
/// </summary>
internal interface IStepExecutor
{
    /// <summary>A prefill alone in prefill bucket <paramref name="prefillIndex"/>, its KV staged in <paramref name="slot"/>.</summary>
    /// <param name="prompt">The prompt, or null for the synthetic prompt of <paramref name="inputLength"/> tokens.</param>
    PrefillOutcome Prefill(int slot, IReadOnlyList<int>? prompt, int inputLength, int prefillIndex);

    /// <summary>
    /// One decode step of <paramref name="rows"/> at batch bucket <paramref name="batch"/> and decode bucket
    /// <paramref name="lengthBucket"/>: each row's cache is brought into that bucket's buffer, rows beyond <c>rows.Length</c> are
    /// padding. Returns the step's record, timed from <paramref name="started"/>, under the next decode step index.
    /// </summary>
    BatchStepTrace Decode(Span<DecodeRow> rows, int batch, int lengthBucket, long started);

    /// <summary>
    /// One mixed step (chunked prefill) of <paramref name="rows"/>, one per token (a sequence's rows consecutive, positions
    /// ascending; a row at position 0 starts a new sequence's cache), at token bucket <paramref name="tokenBucket"/> (rows computed;
    /// the rest are padding) and context bucket <paramref name="contextBucket"/> (an index): each row's K and V are written into its
    /// sequence's cache and it attends over the positions up to its own. After the step each row's token is the one it generated.
    /// </summary>
    BatchStepTrace Mixed(Span<DecodeRow> rows, int tokenBucket, int contextBucket, long started);
}

/// <summary>
/// The reference engine's executor: lets the <see cref="SlowdownHook"/> stretch each step of a slowed cell, the <see cref="KvCache"/>
/// for buffers and copies, the <see cref="ModelRunner"/> for the math, and counts the work (<see cref="EngineWork"/>). Its steps
/// follow the scheduling policy's execution:
/// <list type="bullet">
/// <item>padded: a decode step's rows attend over the whole decode bucket's buffer;</item>
/// <item>paged: each slot has one buffer of the longest request; a decode step's rows attend over their own real blocks, and the
/// padding blocks up to the step's block bucket are attended too (results discarded), so a step's work follows its block
/// bucket, not its longest row;</item>
/// <item>chunked: a mixed step computes one row per token (prompt chunks and decodes) padded to the token bucket, each row writing
/// its K and V into its sequence's buffer of the context bucket and attending over it up to its own position (causal).</item>
/// </list>
/// </summary>
internal sealed class StepExecutor : IStepExecutor
{
    private readonly ModelRunner _runner;
    private readonly KvCache _cache;
    private readonly SlowdownHook _slowdown;
    private readonly EngineWork _work;
    private readonly SchedulingPolicy _policy;
    private readonly int[] _prefillEdges; // the bucket edges, indexed per step
    private readonly int[] _decodeEdges;
    private readonly int[] _rowEdges;
    private readonly int _blockSize;

    /// <param name="rowEdges">The step table's rows: batch buckets, or the chunked policy's token buckets.</param>
    public StepExecutor(ModelRunner runner, KvCache cache, SlowdownHook slowdown, EngineWork work, BucketSet buckets,
        SchedulingPolicy policy, IReadOnlyList<int> rowEdges)
    {
        _runner = runner;
        _cache = cache;
        _slowdown = slowdown;
        _work = work;
        _policy = policy;
        _prefillEdges = [.. buckets.Prefill];
        _decodeEdges = [.. buckets.Decode];
        _rowEdges = [.. rowEdges];
        _blockSize = policy.BlockSize;
    }

    /// <summary>The prefill bucket count; 0 under the chunked scheduler, which never runs a prefill alone.</summary>
    public int PrefillBuckets => _policy.Scheduler == SchedulerKind.Chunked ? 0 : _prefillEdges.Length;

    /// <summary>The step table's rows (batch or token buckets) and columns (decode, block or context buckets).</summary>
    public (int Rows, int Columns) Cells => (_rowEdges.Length, _decodeEdges.Length);

    /// <summary>Prefill bucket <paramref name="index"/>'s padded length.</summary>
    public int PrefillEdge(int index) => _prefillEdges[index];

    /// <summary>The deterministic prompt token of position <paramref name="index"/>.</summary>
    public int SyntheticToken(int index) => _runner.SyntheticToken(index);

    public PrefillOutcome Prefill(int slot, IReadOnlyList<int>? prompt, int inputLength, int prefillIndex)
    {
        var tokens = _runner.Prompt;
        for (var i = 0; i < inputLength; i++)
        {
            tokens[i] = prompt is null ? _runner.SyntheticToken(i) : prompt[i];
        }

        var started = Stopwatch.GetTimestamp();
        var p = _prefillEdges[prefillIndex];
        var (k, v) = _cache.BeginPrefill(slot, p);
        var token = _runner.Prefill(inputLength, p, k, v);
        var stalled = SlowdownHook.Stall(started, _slowdown.Multiplier(BucketKind.Prefill, prefillIndex));
        _work.Prefill(p, stalled);
        return new PrefillOutcome(token, p, Stopwatch.GetElapsedTime(0, stalled).TotalMilliseconds);
    }

    public BatchStepTrace Decode(Span<DecodeRow> rows, int batch, int lengthBucket, long started)
    {
        if (_policy.Execution == ExecutionKind.Paged)
        {
            return PagedDecode(rows, batch, lengthBucket, started);
        }

        var j = lengthBucket;
        var moves = 0;
        for (var r = 0; r < rows.Length; r++)
        {
            ref var row = ref rows[r];
            var copy = _cache.Prepare(row.Slot, j, row.InputLength);
            _work.Copy(copy);
            row.CacheMoved = copy == CacheCopy.Move;
            moves += row.CacheMoved ? 1 : 0;
            _runner.SetRow(r, _cache.K(row.Slot, j), _cache.V(row.Slot, j), row.Position, row.Token);
        }

        return PadAndRun(rows, batch, j, moves, started);
    }

    public BatchStepTrace Mixed(Span<DecodeRow> rows, int tokenBucket, int contextBucket, long started)
    {
        var j = contextBucket;
        var moves = 0;
        var moved = false;
        for (var r = 0; r < rows.Length; r++)
        {
            ref var row = ref rows[r];
            if (r == 0 || rows[r - 1].Slot != row.Slot)
            {
                if (row.Position == 0)
                {
                    _cache.Begin(row.Slot);
                }

                var copy = _cache.Prepare(row.Slot, j, row.InputLength);
                _work.Copy(copy);
                moved = copy == CacheCopy.Move;
                moves += moved ? 1 : 0;
            }

            row.CacheMoved = moved;
            var token = row.Token == DecodeRow.SyntheticPrompt ? _runner.SyntheticToken(row.Position) : row.Token;
            _runner.SetRow(r, _cache.K(row.Slot, j), _cache.V(row.Slot, j), row.Position, token);
        }

        return PadAndRun(rows, tokenBucket, j, moves, started);
    }

    /// <summary>Fills rows <c>rows.Length..batch - 1</c> with padding in the pad slot's buffer of bucket <paramref name="j"/>,
    /// runs the step and hands each real row its token.</summary>
    private BatchStepTrace PadAndRun(Span<DecodeRow> rows, int batch, int j, int moves, long started)
    {
        var pad = _cache.PadSlot;
        for (var r = rows.Length; r < batch; r++)
        {
            _runner.SetRow(r, _cache.K(pad, j), _cache.V(pad, j), 0, 0);
        }

        var trace = Run(batch, rows.Length, j, moves, started);
        for (var r = 0; r < rows.Length; r++)
        {
            rows[r].Token = _runner.RowToken(r);
        }

        return trace;
    }

    /// <summary>
    /// A warm-up step of cell (<paramref name="row"/>, <paramref name="column"/>) in the pad slot (its <paramref name="n"/>-th):
    /// every row at the cell's size, counted and returned like any step, sequences undisturbed.
    /// </summary>
    public BatchStepTrace WarmupStep(int row, int column, int n)
    {
        var started = Stopwatch.GetTimestamp();
        var pad = _cache.PadSlot;
        var batch = _rowEdges[row];
        var token = _runner.SyntheticToken(n);
        if (_policy.Execution == ExecutionKind.Paged)
        {
            for (var r = 0; r < batch; r++)
            {
                _runner.SetRow(r, _cache.K(pad, 0), _cache.V(pad, 0), n % _blockSize, token, _blockSize);
            }

            return RunPaged(batch, batch, column, batch, 0, started);
        }

        var j = column;
        var span = _cache.Spans[j];
        var position = Math.Min(Lower(j) + n, span - 1);
        for (var r = 0; r < batch; r++)
        {
            _runner.SetRow(r, _cache.K(pad, j), _cache.V(pad, j), position, token);
        }

        return Run(batch, batch, j, 0, started);
    }

    /// <summary>
    /// A paged decode step at block bucket <paramref name="j"/>: each row attends over its real blocks of its slot's buffer; the
    /// blocks up to the bucket that no row holds are attended as padding; padded batch rows attend one block of the pad slot.
    /// </summary>
    private BatchStepTrace PagedDecode(Span<DecodeRow> rows, int batch, int j, long started)
    {
        var blocks = 0;
        for (var r = 0; r < rows.Length; r++)
        {
            ref var row = ref rows[r];
            _work.Copy(_cache.Prepare(row.Slot, 0, row.InputLength));
            row.CacheMoved = false;
            var own = EnginePolicy.Blocks(row.Position + 1, _blockSize);
            blocks += own;
            _runner.SetRow(r, _cache.K(row.Slot, 0), _cache.V(row.Slot, 0), row.Position, row.Token, own * _blockSize);
        }

        var pad = _cache.PadSlot;
        for (var r = rows.Length; r < batch; r++)
        {
            _runner.SetRow(r, _cache.K(pad, 0), _cache.V(pad, 0), 0, 0, _blockSize);
        }

        var trace = RunPaged(batch, rows.Length, j, blocks, 0, started);
        for (var r = 0; r < rows.Length; r++)
        {
            rows[r].Token = _runner.RowToken(r);
        }

        return trace;
    }

    private BatchStepTrace RunPaged(int batch, int rows, int j, int realBlocks, int cacheMoves, long started)
    {
        var positions = _decodeEdges[j] * _blockSize;
        var pad = _cache.PadSlot;
        _runner.SetPadding(_cache.K(pad, 0), _cache.V(pad, 0), Math.Max(0, positions - (realBlocks * _blockSize)));
        _runner.Decode(batch, rows, _cache.Spans[0]);
        var stalled = SlowdownHook.Stall(started, _slowdown.Multiplier(BucketKind.Decode, j, _slowdown.BatchIndex(batch)));
        var index = _work.DecodeStep(batch, rows, positions + ((long)(batch - rows) * _blockSize), stalled);
        return new BatchStepTrace(index, batch, rows, new BucketId(BucketKind.Decode, _decodeEdges[j]), positions, cacheMoves,
            Stopwatch.GetElapsedTime(0, stalled).TotalMilliseconds,
            Stopwatch.GetElapsedTime(started).TotalMilliseconds, EngineStepKind.Decode, Array.IndexOf(_rowEdges, batch), j);
    }

    private int Lower(int j) => j == 0 ? 0 : _decodeEdges[j - 1];

    private BatchStepTrace Run(int batch, int rows, int j, int cacheMoves, long started)
    {
        var span = _cache.Spans[j];
        // A chunked step's row is a token bucket: its slowdown is the context bucket's, at every row.
        var batchIndex = _policy.Scheduler == SchedulerKind.Chunked ? 0 : _slowdown.BatchIndex(batch);
        _runner.Decode(batch, rows, span);
        var stalled = SlowdownHook.Stall(started, _slowdown.Multiplier(BucketKind.Decode, j, batchIndex));
        var index = _work.DecodeStep(batch, rows, (long)batch * span, stalled);
        var kind = _policy.Scheduler == SchedulerKind.Chunked ? EngineStepKind.Mixed : EngineStepKind.Decode;
        return new BatchStepTrace(index, batch, rows, new BucketId(BucketKind.Decode, _decodeEdges[j]), span, cacheMoves,
            Stopwatch.GetElapsedTime(0, stalled).TotalMilliseconds,
            Stopwatch.GetElapsedTime(started).TotalMilliseconds, kind, Array.IndexOf(_rowEdges, batch), j);
    }
}
