using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// What an engine profile's scheduling policy means for the reference engine: its rules on the profile (validated with errors
/// naming the field), the longest request it serves, and the KV length a paged slot holds.
/// </summary>
internal static class EnginePolicy
{
    /// <summary>Largest token bucket the engine compiles (a chunked step computes that many rows).</summary>
    public const int MaxTokenBucket = 4096;

    /// <summary>Checks the profile's policy against the engine's limits and its buckets.</summary>
    /// <exception cref="EngineProfileException">Names the field (<c>policy.X</c>, or the profile's own) and its allowed range.</exception>
    public static void Validate(EngineProfile profile, BucketSet buckets, string source)
    {
        var policy = profile.EffectivePolicy;
        if (policy.Check() is { } problem)
        {
            throw EngineProfile.Bad(source, PolicyField(problem), problem);
        }

        if (policy.IsDefault)
        {
            return;
        }

        if (profile.Convention != DecodeConvention.AfterAppend)
        {
            throw EngineProfile.Bad(source, "convention",
                $"is before-append; the {policy.Name} policy runs after-append only (a step's context counts its own token)");
        }

        if (policy.Scheduler == SchedulerKind.Chunked)
        {
            EngineProfile.Range(source, "policy.maxNumSeqs", policy.MaxNumSeqs, 1, EngineProfile.MaxBatch);
            EngineProfile.Range(source, "policy.maxNumBatchedTokens", policy.MaxNumBatchedTokens, policy.MaxNumSeqs, MaxTokenBucket);
            EngineProfile.Range(source, "policy.tokenBuckets", policy.TokenBuckets[^1], 1, MaxTokenBucket);
            EngineProfile.Range(source, "policy.maxModelLen", policy.MaxModelLen, 0, buckets.MaxSequence);
            if (profile.BatchBuckets is not [1])
            {
                throw EngineProfile.Bad(source, "batchBuckets",
                    "belong to prefill-first; the chunked scheduler's steps are over token buckets (policy.tokenBuckets) and its " +
                    "sequences in flight are policy.maxNumSeqs: leave batchBuckets out");
            }
        }
        else
        {
            EngineProfile.Range(source, "policy.blockSize", policy.BlockSize, 1, 4096);
            var capacity = (long)buckets.MaxSequence * policy.BlockSize;
            if (capacity > 65536)
            {
                throw EngineProfile.Bad(source, "decodeBuckets",
                    $"the largest block bucket {buckets.MaxSequence} x blockSize {policy.BlockSize} = {capacity} tokens; allowed up to 65536");
            }

            EngineProfile.Range(source, "policy.maxModelLen", policy.MaxModelLen, 0, (int)capacity);
            if (MaxModelLen(policy, buckets) <= buckets.MaxPrompt)
            {
                throw EngineProfile.Bad(source, "policy.maxModelLen",
                    $"is {MaxModelLen(policy, buckets)}; it must be above the longest prefill bucket {buckets.MaxPrompt} (I + O <= maxModelLen)");
            }
        }
    }

    /// <summary>The bound on <c>I + O</c>: the policy's <c>maxModelLen</c>, else the largest decode (context) bucket, or for paged
    /// execution the largest block bucket's tokens.</summary>
    public static int MaxModelLen(SchedulingPolicy policy, BucketSet buckets) =>
        policy.MaxModelLen > 0 ? policy.MaxModelLen
        : policy.Execution == ExecutionKind.Paged ? buckets.MaxSequence * policy.BlockSize
        : buckets.MaxSequence;

    /// <summary>The longest prompt: the longest prefill bucket, or under chunked prefill <c>max_model_len - 1</c> (its prompts run in
    /// chunks of mixed steps, as vLLM's V1 scheduler serves any prompt up to max_model_len).</summary>
    public static int MaxPrompt(SchedulingPolicy policy, BucketSet buckets) =>
        policy.Scheduler == SchedulerKind.Chunked ? MaxModelLen(policy, buckets) - 1 : buckets.MaxPrompt;

    /// <summary>Positions a paged slot's KV buffer holds: the longest request's blocks (at least the longest prompt's).</summary>
    public static int PagedSpan(SchedulingPolicy policy, BucketSet buckets)
    {
        var tokens = Math.Max(MaxModelLen(policy, buckets), buckets.MaxPrompt);
        return Blocks(tokens, policy.BlockSize) * policy.BlockSize;
    }

    /// <summary><c>ceil(tokens / blockSize)</c>.</summary>
    public static int Blocks(int tokens, int blockSize) => (tokens + blockSize - 1) / blockSize;

    /// <summary>Whether a request of <c>I</c> prompt and <c>O</c> output tokens can be served; null when it can, else the reason.</summary>
    public static string? CheckRequest(SchedulingPolicy policy, BucketSet buckets, int inputLength, int outputLength)
    {
        if (policy.Execution == ExecutionKind.Padded && policy.Scheduler == SchedulerKind.PrefillFirst &&
            buckets.CheckRequest(inputLength, outputLength) is { } reason)
        {
            return reason;
        }

        if (inputLength < 1 || outputLength < 1)
        {
            return inputLength < 1 ? $"input length {inputLength} is below 1" : $"output length {outputLength} is below 1";
        }

        var maxPrompt = MaxPrompt(policy, buckets);
        if (inputLength > maxPrompt)
        {
            return policy.Scheduler == SchedulerKind.Chunked
                ? $"input length {inputLength} leaves no room for an output token under max_model_len {maxPrompt + 1} (allowed 1..{maxPrompt})"
                : $"input length {inputLength} is above the longest prefill bucket {maxPrompt} (allowed 1..{maxPrompt})";
        }

        var max = MaxModelLen(policy, buckets);
        return (long)inputLength + outputLength > max
            ? $"input length {inputLength} + output length {outputLength} = {(long)inputLength + outputLength} is above max_model_len " +
              $"{max} (allowed I + O <= {max})"
            : null;
    }

    private static string PolicyField(string problem)
    {
        var word = problem.Split(' ', 2)[0];
        return word is "scheduler" or "execution" or "maxModelLen" or "maxNumBatchedTokens" or "maxNumSeqs" or "tokenBuckets" or "blockSize"
            ? $"policy.{word}"
            : problem.Contains("token bucket", StringComparison.Ordinal) ? "policy.tokenBuckets" : "policy";
    }
}
