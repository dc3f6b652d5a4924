using Lens.Core;

namespace Lens.Engine;

/// <summary>The prefill of one request: its bucket, the padded length it computed, extra (slowdown) layer passes, its time.</summary>
public readonly record struct PrefillTrace(BucketId Bucket, int PaddedLength, int ShadowLayerPasses, double Ms);

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
/// <param name="ShadowLayerPasses">Extra layer passes run for the bucket's slowdown.</param>
/// <param name="Ms">Wall time of the step (monotonic clock).</param>
public readonly record struct DecodeStepTrace(
    int Step,
    int Length,
    BucketId Bucket,
    int AttentionSpan,
    bool CacheMoved,
    int ShadowLayerPasses,
    double Ms);

/// <summary>
/// One generated request: exactly <c>O</c> tokens (the first from prefill, then <c>O - 1</c> decode steps), with the trace of
/// buckets used, for exact tests of bucket choice, and the engine's own timings (from the moment it started the request).
/// </summary>
public sealed record GenerationResult(
    IReadOnlyList<int> Tokens,
    int InputLength,
    PrefillTrace Prefill,
    IReadOnlyList<DecodeStepTrace> Steps,
    int CacheMoves,
    double TtftMs,
    double E2eMs)
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
/// <param name="DecodeSteps">Decode steps.</param>
/// <param name="AttentionPositions">KV positions scored per head and layer, summed over decode steps (the sum of spans).</param>
/// <param name="CacheMoves">Copies of the cache into the next decode bucket's buffer at an edge.</param>
/// <param name="CacheHandoffs">Copies of a prefill's KV into the first decode bucket's buffer.</param>
/// <param name="ShadowLayerPasses">Extra layer passes run for slowdowns.</param>
public readonly record struct EngineCounters(
    long Requests,
    long PrefillPasses,
    long PrefillRows,
    long DecodeSteps,
    long AttentionPositions,
    long CacheMoves,
    long CacheHandoffs,
    long ShadowLayerPasses);
