using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// Chunked prefill under a token budget (method.md, "Scheduling policies"; vLLM's V1 engine): each step, first every decoding
/// sequence gets 1 token; then, first come first served, sequences whose prompt is partly processed and then waiting requests
/// (admitted, <see cref="StepKind.Join"/>, only while a slot is free and budget is left) get prompt chunks
/// <c>min(prompt tokens left, budget left)</c> until the budget <c>max_num_batched_tokens</c> is spent. The step is one graph
/// over token bucket <c>T</c> (the smallest <c>&gt;=</c> the step's tokens) and context bucket <c>K</c> (the smallest of the bucket
/// set's decode buckets <c>&gt;=</c> the longest context after the step). It writes each sequence's share into
/// <see cref="Sequence.Scheduled"/>.
/// </summary>
internal sealed class ChunkedPolicy : ISchedulingPolicy
{
    private readonly BucketSet _contexts;
    private readonly int[] _tokenEdges;
    private readonly int _budget;

    public ChunkedPolicy(BucketSet contexts, SchedulingPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(contexts);
        ArgumentNullException.ThrowIfNull(policy);
        _contexts = contexts;
        _tokenEdges = [.. policy.TokenBuckets];
        _budget = policy.MaxNumBatchedTokens;
    }

    public ScheduledStep Next(SchedulerView view)
    {
        var inFlight = view.InFlight;
        var left = _budget;
        foreach (var sequence in inFlight)
        {
            left -= Decoding(sequence) ? 1 : 0;
        }

        foreach (var sequence in inFlight)
        {
            left -= Decoding(sequence) ? 0 : Math.Min(sequence.InputLength - sequence.Prefilled, Math.Max(left, 0));
        }

        if (left > 0 && view.FreeSlots > 0 && view.NextWaiting is not null)
        {
            return ScheduledStep.Join;
        }

        if (inFlight.IsEmpty)
        {
            return ScheduledStep.Idle;
        }

        left = _budget;
        var tokens = 0;
        var longest = 0;
        foreach (var sequence in inFlight)
        {
            sequence.Scheduled = 0;
            if (Decoding(sequence))
            {
                sequence.Scheduled = 1;
                longest = Math.Max(longest, _contexts.StepLength(sequence.InputLength, sequence.Produced));
            }
        }

        left -= CountScheduled(inFlight);
        foreach (var sequence in inFlight)
        {
            if (!Decoding(sequence) && left > 0)
            {
                sequence.Scheduled = Math.Min(sequence.InputLength - sequence.Prefilled, left);
                left -= sequence.Scheduled;
                longest = Math.Max(longest, sequence.Prefilled + sequence.Scheduled);
            }
        }

        tokens = _budget - left;
        return ScheduledStep.Mixed(tokens, PrefillFirstPolicy.Smallest(_tokenEdges, tokens), _contexts.DecodeIndex(longest));
    }

    /// <summary>Whether the sequence's prompt is all processed (it has its first token and decodes one token a step).</summary>
    private static bool Decoding(Sequence sequence) => sequence.Prefilled == sequence.InputLength;

    private static int CountScheduled(ReadOnlySpan<Sequence> inFlight)
    {
        var n = 0;
        foreach (var sequence in inFlight)
        {
            n += sequence.Scheduled;
        }

        return n;
    }
}
