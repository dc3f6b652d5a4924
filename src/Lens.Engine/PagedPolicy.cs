using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// Prefill-first continuous batching with paged execution (method.md, "Scheduling policies"; vLLM on Gaudi): admission and
/// prefill as <see cref="PrefillFirstPolicy"/>, but a request is admitted only when its whole need
/// <c>ceil((I + O) / block_size)</c> fits beside the blocks reserved by those in flight (the KV capacity is the largest block
/// bucket; the head of the queue waits, first come first served); a decode step runs at <c>B</c> = the smallest batch bucket
/// <c>&gt;=</c> the sequences in flight and the smallest block bucket <c>&gt;=</c> <c>sum over rows of ceil(length after the
/// append / block_size)</c>. The bucket set's decode buckets are the block buckets (counted in blocks).
/// </summary>
internal sealed class PagedPolicy : ISchedulingPolicy
{
    private readonly BucketSet _buckets;
    private readonly int[] _batchEdges;
    private readonly int _blockSize;

    public PagedPolicy(BucketSet buckets, IReadOnlyList<int> batchBuckets, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(batchBuckets);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        _buckets = buckets;
        _batchEdges = [.. batchBuckets];
        _blockSize = blockSize;
    }

    /// <summary>The KV capacity in blocks: the largest block bucket.</summary>
    public int Capacity => _buckets.MaxSequence;

    public ScheduledStep Next(SchedulerView view)
    {
        var inFlight = view.InFlight;
        if (view.FreeSlots > 0 && view.NextWaiting is { } next && Reserved(inFlight) + Need(next) <= Capacity)
        {
            return ScheduledStep.Admit(_buckets.PrefillIndex(next.InputLength));
        }

        if (inFlight.IsEmpty)
        {
            return ScheduledStep.Idle;
        }

        var blocks = 0;
        foreach (var sequence in inFlight)
        {
            blocks += EnginePolicy.Blocks(_buckets.StepLength(sequence.InputLength, sequence.Produced), _blockSize);
        }

        return ScheduledStep.Decode(inFlight.Length, PrefillFirstPolicy.Smallest(_batchEdges, inFlight.Length), _buckets.DecodeIndex(blocks));
    }

    /// <summary>Blocks a request reserves while in flight: its whole need, <c>ceil((I + O) / block_size)</c>.</summary>
    public int Need(Sequence sequence) => EnginePolicy.Blocks(sequence.InputLength + sequence.Tokens.Length, _blockSize);

    private int Reserved(ReadOnlySpan<Sequence> inFlight)
    {
        var reserved = 0;
        foreach (var sequence in inFlight)
        {
            reserved += Need(sequence);
        }

        return reserved;
    }
}
