using System.Diagnostics;
using Lens.Core;

namespace Lens.Engine;

/// <summary>One row of a decode step the scheduler asks for: in, the sequence's slot and its next input; out, its token.</summary>
internal struct DecodeRow
{
    /// <summary>The sequence's KV slot.</summary>
    public int Slot;

    /// <summary>Its prompt length <c>I</c>.</summary>
    public int InputLength;

    /// <summary>The position of the input token: <c>I + k - 1</c> at step <c>k</c>.</summary>
    public int Position;

    /// <summary>The input token; after the step, the token generated.</summary>
    public int Token;

    /// <summary>After the step: whether the row's cache was copied into the step's bucket (not counting its first step's hand-off).</summary>
    public bool CacheMoved;
}

/// <summary>What a prefill the scheduler asked for gave: the first token, the padded length computed, extra layer passes.</summary>
internal readonly record struct PrefillOutcome(int Token, int PaddedLength, int ShadowLayerPasses);

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
}

/// <summary>
/// The reference engine's executor: asks the <see cref="SlowdownHook"/> for each step's extra passes, the <see cref="KvCache"/>
/// for buffers and copies, the <see cref="ModelRunner"/> for the math, and counts the work (<see cref="EngineWork"/>).
/// </summary>
internal sealed class StepExecutor(ModelRunner runner, KvCache cache, SlowdownHook slowdown, EngineWork work, BucketSet buckets)
    : IStepExecutor
{
    private readonly int[] _prefillEdges = [.. buckets.Prefill]; // copies: BucketSet.Prefill/Decode copy on every read
    private readonly int[] _decodeEdges = [.. buckets.Decode];

    /// <summary>The prefill bucket count.</summary>
    public int PrefillBuckets => _prefillEdges.Length;

    /// <summary>Prefill bucket <paramref name="index"/>'s padded length.</summary>
    public int PrefillEdge(int index) => _prefillEdges[index];

    /// <summary>The deterministic prompt token of position <paramref name="index"/>.</summary>
    public int SyntheticToken(int index) => runner.SyntheticToken(index);

    public PrefillOutcome Prefill(int slot, IReadOnlyList<int>? prompt, int inputLength, int prefillIndex)
    {
        var tokens = runner.Prompt;
        for (var i = 0; i < inputLength; i++)
        {
            tokens[i] = prompt is null ? runner.SyntheticToken(i) : prompt[i];
        }

        var p = _prefillEdges[prefillIndex];
        var shadow = slowdown.ShadowPasses(BucketKind.Prefill, prefillIndex, runner.PrefillPassUnits(p));
        var (k, v) = cache.BeginPrefill(slot, p);
        var token = runner.Prefill(inputLength, p, k, v, shadow);
        work.Prefill(p, shadow);
        return new PrefillOutcome(token, p, shadow);
    }

    public BatchStepTrace Decode(Span<DecodeRow> rows, int batch, int lengthBucket, long started)
    {
        var j = lengthBucket;
        var moves = 0;
        for (var r = 0; r < rows.Length; r++)
        {
            ref var row = ref rows[r];
            var copy = cache.Prepare(row.Slot, j, row.InputLength);
            work.Copy(copy);
            row.CacheMoved = copy == CacheCopy.Move;
            moves += row.CacheMoved ? 1 : 0;
            runner.SetRow(r, cache.K(row.Slot, j), cache.V(row.Slot, j), row.Position, row.Token);
        }

        var pad = cache.PadSlot;
        for (var r = rows.Length; r < batch; r++)
        {
            runner.SetRow(r, cache.K(pad, j), cache.V(pad, j), 0, 0);
        }

        var trace = Run(batch, rows.Length, j, moves, started);
        for (var r = 0; r < rows.Length; r++)
        {
            rows[r].Token = runner.RowToken(r);
        }

        return trace;
    }

    /// <summary>
    /// A warm-up decode step: all <paramref name="batch"/> rows in the pad slot's buffer of decode bucket <paramref name="j"/>, at
    /// <paramref name="position"/> with <paramref name="token"/>; counted and returned like any step, sequences undisturbed.
    /// </summary>
    public BatchStepTrace WarmupDecode(int batch, int j, int position, int token)
    {
        var started = Stopwatch.GetTimestamp();
        var pad = cache.PadSlot;
        for (var r = 0; r < batch; r++)
        {
            runner.SetRow(r, cache.K(pad, j), cache.V(pad, j), position, token);
        }

        return Run(batch, batch, j, 0, started);
    }

    private BatchStepTrace Run(int batch, int rows, int j, int cacheMoves, long started)
    {
        var span = cache.Spans[j];
        var shadow = slowdown.ShadowPasses(BucketKind.Decode, j, runner.DecodePassUnits(span), slowdown.BatchIndex(batch));
        runner.Decode(batch, rows, span, shadow);
        var index = work.DecodeStep(batch, rows, span, shadow);
        return new BatchStepTrace(index, batch, rows, new BucketId(BucketKind.Decode, _decodeEdges[j]), span, cacheMoves, shadow,
            Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }
}
