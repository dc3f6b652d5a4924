using Lens.Core;

namespace Lens.Engine;

/// <summary>The prefill of one request: its bucket, the padded length it computed, the time its slowdown added, its time.</summary>
public readonly record struct PrefillTrace(BucketId Bucket, int PaddedLength, double SlowdownMs, double Ms);

/// <summary>
/// Decode step <c>k</c> of one request (method.md, "Terms"): it runs at sequence length <c>I + k</c>, picked bucket
/// <see cref="Bucket"/> = <c>dec(StepLength(I, k))</c>, attended over <see cref="AttentionSpan"/> KV positions (the bucket's
/// full length, masked beyond the real one), and moved the cache into that bucket's buffer when it crossed an edge.
/// </summary>
/// <param name="Step">k, 1-based.</param>
/// <param name="Length">The sequence length after appending this step's input token: <c>I + k</c>.</param>
/// <param name="Bucket">The decode bucket the step ran in.</param>
/// <param name="AttentionSpan">KV positions each head scored: the bucket edge (plus one under the before-append convention).</param>
/// <param name="CacheMoved">True when this step crossed a bucket edge and copied the cache into the next bucket's buffer.</param>
/// <param name="SlowdownMs">Time the cell's slowdown added to the step (0 without one).</param>
/// <param name="Ms">Wall time of the step (monotonic clock): the whole batched step, cache copies included.</param>
/// <param name="Batch">The batch bucket B the step ran at (method.md, "Batched serving").</param>
/// <param name="Rows">Sequences in flight in that step (this one included); <c>Batch - Rows</c> rows were padding.</param>
/// <param name="Index">The engine's decode step number (<see cref="BatchStepTrace.Index"/>), shared by every row of the step.</param>
public readonly record struct DecodeStepTrace(
    int Step,
    int Length,
    BucketId Bucket,
    int AttentionSpan,
    bool CacheMoved,
    double SlowdownMs,
    double Ms,
    int Batch,
    int Rows,
    long Index);

/// <summary>What kind of step the engine ran (its step log).</summary>
public enum EngineStepKind
{
    /// <summary>A decode step of the prefill-first scheduler: cell (batch bucket, decode bucket), or with paged execution (batch
    /// bucket, block bucket).</summary>
    Decode = 0,

    /// <summary>A mixed step of the chunked scheduler (prompt chunks and decodes together): cell (token bucket, context bucket).</summary>
    Mixed = 1,
}

/// <summary>
/// One step of the engine at (<see cref="Batch"/>, <see cref="Bucket"/>), whatever requests it served (warm-up included):
/// <see cref="ReferenceEngine.StepsSince"/>. Its cell in a model's step table (Lens.Core's indices, whose axes the scheduling
/// policy names) is (<see cref="Row"/>, <see cref="Column"/>): batch bucket by decode bucket (prefill-first padded), batch bucket
/// by block bucket (paged; <see cref="Bucket"/>'s edge then counts blocks), token bucket by context bucket (chunked, where
/// <see cref="Batch"/> is the token bucket's edge and <see cref="Rows"/> the tokens scheduled).
/// </summary>
/// <param name="Index">The engine's decode step number, from 0 (<see cref="EngineCounters.DecodeSteps"/> before the step).</param>
/// <param name="Batch">The batch bucket B: rows computed.</param>
/// <param name="Rows">Sequences in flight (real rows); the other <c>Batch - Rows</c> were padding.</param>
/// <param name="Bucket">The decode bucket D: the smallest at or above the longest sequence after this step's append.</param>
/// <param name="AttentionSpan">KV positions each row's heads scored (paged: the block bucket's positions, summed over the rows).</param>
/// <param name="CacheMoves">Rows whose cache was copied into D's buffer because D grew.</param>
/// <param name="SlowdownMs">Time the cell's slowdown added to the step (0 without one).</param>
/// <param name="Ms">Wall time of the step (monotonic clock), cache copies included.</param>
/// <param name="Kind">Decode or mixed.</param>
/// <param name="Row">The cell's row index: the batch bucket's (token bucket's for a mixed step).</param>
/// <param name="Column">The cell's column index: the decode, block or context bucket's.</param>
public readonly record struct BatchStepTrace(
    long Index,
    int Batch,
    int Rows,
    BucketId Bucket,
    int AttentionSpan,
    int CacheMoves,
    double SlowdownMs,
    double Ms,
    EngineStepKind Kind = EngineStepKind.Decode,
    int Row = 0,
    int Column = 0)
{
    /// <summary>Rows computed only to fill the batch bucket.</summary>
    public int PaddedRows => Batch - Rows;
}

/// <summary>
/// One generated request: exactly <c>O</c> tokens (the first from prefill, then <c>O - 1</c> decode steps), with the trace of
/// buckets used, for exact tests of bucket choice, and the engine's own timings (from the moment it admitted the request; the wait
/// before, for a slot or for the engine, is <see cref="QueueMs"/>).
/// </summary>
public sealed record GenerationResult(
    IReadOnlyList<int> Tokens,
    int InputLength,
    PrefillTrace Prefill,
    IReadOnlyList<DecodeStepTrace> Steps,
    int CacheMoves,
    double TtftMs,
    double E2eMs,
    double QueueMs = 0)
{
    /// <summary>O, the tokens generated (the prefill's included).</summary>
    public int OutputLength => Tokens.Count;
}

/// <summary>
/// Work the engine has done since it was created (warm-up included): exact counts, for tests that assert work instead of time.
/// </summary>
/// <param name="Requests">Requests generated (warm-up excluded).</param>
/// <param name="PrefillPasses">Prefill passes (warm-up included).</param>
/// <param name="PrefillRows">Rows computed by prefill passes: the sum of padded lengths.</param>
/// <param name="DecodeSteps">Decode steps (and mixed steps under chunked prefill): the step log's indices.</param>
/// <param name="AttentionPositions">KV positions scored per head, layer and row, summed over decode steps (the sum of
/// <c>B * span</c>).</param>
/// <param name="CacheMoves">Copies of the cache into the next decode bucket's buffer at an edge.</param>
/// <param name="CacheHandoffs">Copies of a prefill's KV into the first decode bucket's buffer.</param>
/// <param name="SlowdownMs">Time slowdowns added to steps, in all.</param>
/// <param name="PaddedRows">Rows decode steps computed only to fill their batch bucket (<c>B - rows in flight</c>, summed).</param>
public readonly record struct EngineCounters(
    long Requests,
    long PrefillPasses,
    long PrefillRows,
    long DecodeSteps,
    long AttentionPositions,
    long CacheMoves,
    long CacheHandoffs,
    double SlowdownMs,
    long PaddedRows);
