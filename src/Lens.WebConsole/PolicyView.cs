using System.Globalization;
using Lens.Abstractions;

namespace Lens.WebConsole;

/// <summary>How the console shows a deployment's scheduling policy (<see cref="PolicySpec"/>) and what its decode buckets mean under it.</summary>
public static class PolicyView
{
    /// <summary>One line: <c>prefill-first padded</c>, or the policy's name with its numbers (vLLM's names).</summary>
    public static string Describe(PolicySpec? policy)
    {
        if (policy is null || policy.IsDefault)
        {
            return "prefill-first padded";
        }

        var parts = new List<string>();
        if (policy.IsChunked)
        {
            parts.Add($"max_num_batched_tokens {N(policy.MaxNumBatchedTokens)}");
            parts.Add($"token buckets {string.Join(", ", policy.TokenBuckets ?? [])}");
            parts.Add($"max_num_seqs {N(policy.MaxNumSeqs)}");
        }

        if (policy.IsPaged)
        {
            parts.Add($"block size {N(policy.BlockSize)}");
        }

        if (policy.MaxModelLen > 0)
        {
            parts.Add($"max_model_len {N(policy.MaxModelLen)}");
        }

        return $"{policy.Normalized().Name}: {string.Join(", ", parts)}";
    }

    /// <summary>What the spec's decode buckets are under its policy: decode, block (KV blocks of the batch) or context buckets.</summary>
    public static string DecodeLabel(PolicySpec? policy) => policy switch
    {
        { IsDefault: false, IsPaged: true } => "Block buckets (KV blocks)",
        { IsDefault: false, IsChunked: true } => "Context buckets",
        _ => "Decode buckets",
    };

    private static string N(int value) => value.ToString(CultureInfo.InvariantCulture);
}
