using System.Diagnostics;
using Lens.Core;

namespace Lens.Engine;

/// <summary>What the scheduler runs next.</summary>
internal enum StepKind
{
    /// <summary>Nothing to run: the iteration ends.</summary>
    Idle,

    /// <summary>Admit the request at the head of the queue into a free slot and run its prefill alone.</summary>
    Admit,

    /// <summary>One decode step for the first <see cref="ScheduledStep.Rows"/> sequences in flight (admission order).</summary>
    Decode,

    /// <summary>Admit the request at the head of the queue into a free slot without running anything: its prompt is processed in
    /// chunks by mixed steps (chunked prefill).</summary>
    Join,

    /// <summary>One mixed step of the chunked scheduler: every sequence in flight with <see cref="Sequence.Scheduled"/> tokens
    /// (a decode token, or a prompt chunk) in one graph over token bucket <see cref="ScheduledStep.Batch"/> (tokens computed,
    /// <see cref="ScheduledStep.Rows"/> of them real) and context bucket <see cref="ScheduledStep.LengthBucket"/>.</summary>
    Mixed,
}

/// <summary>
/// A policy's decision: which sequences (the head of the queue, or the first <see cref="Rows"/> in flight) and which cell: for a
/// prefill the prefill bucket index; for a decode step the batch bucket <see cref="Batch"/> and the decode bucket index.
/// </summary>
internal readonly record struct ScheduledStep(StepKind Kind, int Rows, int Batch, int LengthBucket)
{
    public static ScheduledStep Idle => default;

    public static ScheduledStep Admit(int prefillBucket) => new(StepKind.Admit, 1, 1, prefillBucket);

    public static ScheduledStep Decode(int rows, int batch, int decodeBucket) => new(StepKind.Decode, rows, batch, decodeBucket);

    public static ScheduledStep Join => new(StepKind.Join, 1, 1, 0);

    public static ScheduledStep Mixed(int tokens, int tokenBucket, int contextBucket) => new(StepKind.Mixed, tokens, tokenBucket, contextBucket);
}

/// <summary>What a policy sees: the sequences in flight (admission order), the head of the queue, the free slots.</summary>
internal readonly ref struct SchedulerView(ReadOnlySpan<Sequence> inFlight, Sequence? nextWaiting, int freeSlots)
{
    public ReadOnlySpan<Sequence> InFlight { get; } = inFlight;

    /// <summary>The request that waits longest, or null.</summary>
    public Sequence? NextWaiting { get; } = nextWaiting;

    public int FreeSlots { get; } = freeSlots;
}

/// <summary>
/// A scheduling policy: decides the scheduler's next step from what it sees. The scheduler runs steps until the policy says
/// <see cref="StepKind.Idle"/> or a decode step has run (one iteration), and owns everything else: the queue, slots, cancellation,
/// delivery of tokens, the step log. Each policy is a class: <see cref="PrefillFirstPolicy"/>, <see cref="PagedPolicy"/>
/// (prefill-first over block buckets, with KV admission) and <see cref="ChunkedPolicy"/> (mixed steps under a token budget).
/// </summary>
internal interface ISchedulingPolicy
{
    ScheduledStep Next(SchedulerView view);
}

/// <summary>
/// Prefill-first continuous batching over batch buckets (method.md, "Batched serving"; vLLM and NxD Inference on Neuron without
/// chunked prefill), padded execution: while a request waits and a slot is free it is admitted and its prefill runs alone at
/// <c>pre(I)</c>; then one decode step for everyone in flight at <c>B</c> = the smallest batch bucket <c>&gt;=</c> their number
/// and <c>D</c> = the smallest decode bucket <c>&gt;=</c> the longest of them after this step's append (step <c>k</c> of a
/// sequence is at <c>StepLength(I, k)</c>).
/// </summary>
internal sealed class PrefillFirstPolicy : ISchedulingPolicy
{
    private readonly BucketSet _buckets;
    private readonly int[] _batchEdges;

    public PrefillFirstPolicy(BucketSet buckets, IReadOnlyList<int> batchBuckets)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(batchBuckets);
        _buckets = buckets;
        _batchEdges = [.. batchBuckets];
    }

    public ScheduledStep Next(SchedulerView view)
    {
        if (view.FreeSlots > 0 && view.NextWaiting is { } next)
        {
            return ScheduledStep.Admit(_buckets.PrefillIndex(next.InputLength));
        }

        var inFlight = view.InFlight;
        if (inFlight.IsEmpty)
        {
            return ScheduledStep.Idle;
        }

        var j = 0;
        foreach (var sequence in inFlight)
        {
            j = Math.Max(j, _buckets.DecodeIndex(_buckets.StepLength(sequence.InputLength, sequence.Produced)));
        }

        return ScheduledStep.Decode(inFlight.Length, BatchBucket(inFlight.Length), j);
    }

    private int BatchBucket(int rows) => Smallest(_batchEdges, rows);

    /// <summary>The smallest of ascending <paramref name="edges"/> at or above <paramref name="value"/>.</summary>
    internal static int Smallest(int[] edges, int value)
    {
        foreach (var edge in edges)
        {
            if (edge >= value)
            {
                return edge;
            }
        }

        throw new UnreachableException($"{value} is above the largest bucket {edges[^1]}");
    }
}
