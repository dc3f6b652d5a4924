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
/// delivery of tokens, the step log. Another policy (issue 18: chunked prefill under a token budget, paged execution over block
/// buckets) is another class; a step that mixes prompt chunks with decodes would be a new <see cref="StepKind"/> that the
/// executor runs.
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

    /// <summary>The smallest batch bucket at or above <paramref name="rows"/>.</summary>
    private int BatchBucket(int rows)
    {
        foreach (var edge in _batchEdges)
        {
            if (edge >= rows)
            {
                return edge;
            }
        }

        throw new UnreachableException($"{rows} sequences in flight, above max_num_seqs {_batchEdges[^1]}");
    }
}
