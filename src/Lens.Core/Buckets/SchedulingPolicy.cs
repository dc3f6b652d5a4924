using System.Collections.Immutable;
using System.Text.Json.Serialization;

namespace Lens.Core;

/// <summary>Which scheduler a deployment's serving stack runs (method.md, "Scheduling policies").</summary>
public enum SchedulerKind
{
    /// <summary>Prefill alone (context batch 1), then one decode step for everyone in flight (NxD Inference, vLLM on Neuron
    /// without chunked prefill, RBLN).</summary>
    PrefillFirst = 0,

    /// <summary>Every step has a token budget <c>max_num_batched_tokens</c>: decodes first, then prompt chunks, first come first
    /// served (vLLM's V1 engine, NxD Inference's chunked prefill). A step costs <c>C[T, K]</c>.</summary>
    Chunked = 1,
}

/// <summary>How a decode step's length bucket is chosen (method.md, "Execution types").</summary>
public enum ExecutionKind
{
    /// <summary>The smallest decode bucket at or above the longest in-flight sequence after the append (NxD Inference, vLLM on Neuron).</summary>
    Padded = 0,

    /// <summary>The smallest block bucket at or above the batch's total KV blocks, <c>sum ceil(len / block_size)</c> (vLLM on Gaudi).</summary>
    Paged = 1,
}

/// <summary>
/// The scheduling policy of a deployment, part of its identity (method.md, "Scheduling policies: every stack's scheduler, one fit
/// for all"). The model's cost table keeps its shape for every policy: prefill values <c>A[p]</c> and a step table of rows by
/// columns, whose axes the policy names:
/// <list type="bullet">
/// <item>prefill-first padded (the default, and what every file and deployment without a policy means): rows are batch buckets,
/// columns decode buckets (tokens): <c>S[B, D]</c>;</item>
/// <item>prefill-first paged: rows are batch buckets, columns block buckets (in blocks of <see cref="BlockSize"/> tokens):
/// <c>S[B, blocks]</c>; the KV capacity is the largest block bucket; <see cref="MaxModelLen"/> bounds <c>I + O</c>;</item>
/// <item>chunked (padded): rows are token buckets (<see cref="TokenBuckets"/>, the step's scheduled tokens), columns context buckets
/// (the bucket set's decode buckets): <c>C[T, K]</c>; no step runs a prefill alone, so prefill values are not used;
/// <see cref="MaxNumBatchedTokens"/> is the step's token budget and <see cref="MaxNumSeqs"/> the sequences in flight at most.</item>
/// </list>
/// Immutable; <see cref="Check"/> names the first field out of range.
/// </summary>
public sealed record SchedulingPolicy
{
    /// <summary>Largest token budget, block size or bucket accepted (a hostile file cannot ask for unbounded tables).</summary>
    public const int MaxTokens = 1 << 20;

    /// <summary>Most token buckets accepted.</summary>
    public const int MaxTokenBuckets = 256;

    /// <summary>Today's scheduler: prefill-first, padded; what a model file or deployment without a policy means.</summary>
    public static SchedulingPolicy Default { get; } = new();

    public SchedulerKind Scheduler { get; init; } = SchedulerKind.PrefillFirst;

    public ExecutionKind Execution { get; init; } = ExecutionKind.Padded;

    /// <summary>Chunked: the step's token budget (vLLM's <c>max_num_batched_tokens</c>); 0 for prefill-first.</summary>
    public int MaxNumBatchedTokens { get; init; }

    /// <summary>Chunked: the compiled step sizes in tokens, ascending; the largest is at least <see cref="MaxNumBatchedTokens"/>.
    /// Empty for prefill-first.</summary>
    public ImmutableArray<int> TokenBuckets { get; init; } = [];

    /// <summary>Chunked: sequences in flight at most (<c>max_num_seqs</c>); 0 for prefill-first, where the largest batch bucket is it.</summary>
    public int MaxNumSeqs { get; init; }

    /// <summary>Paged: tokens per KV block (vLLM's <c>block_size</c>); 0 when padded.</summary>
    public int BlockSize { get; init; }

    /// <summary>Bound on <c>I + O</c> (vLLM's <c>max_model_len</c>); 0: the largest decode (or context) bucket, or for paged
    /// execution the largest block bucket times the block size.</summary>
    public int MaxModelLen { get; init; }

    /// <summary>Whether this is today's prefill-first padded policy (nothing to write to a model file).</summary>
    [JsonIgnore]
    public bool IsDefault => Equals(Default);

    /// <summary>Short name for tables and logs: <c>prefill-first</c>, <c>prefill-first paged</c>, <c>chunked</c>.</summary>
    [JsonIgnore]
    public string Name => Scheduler switch
    {
        SchedulerKind.Chunked => "chunked",
        _ => Execution == ExecutionKind.Paged ? "prefill-first paged" : "prefill-first",
    };

    /// <summary>A chunked policy (padded execution).</summary>
    public static SchedulingPolicy ChunkedPrefill(int maxNumBatchedTokens, IEnumerable<int> tokenBuckets, int maxNumSeqs, int maxModelLen = 0) =>
        new()
        {
            Scheduler = SchedulerKind.Chunked,
            MaxNumBatchedTokens = maxNumBatchedTokens,
            TokenBuckets = [.. tokenBuckets],
            MaxNumSeqs = maxNumSeqs,
            MaxModelLen = maxModelLen,
        };

    /// <summary>A prefill-first policy with paged execution over blocks of <paramref name="blockSize"/> tokens.</summary>
    public static SchedulingPolicy PagedDecode(int blockSize, int maxModelLen = 0) =>
        new() { Execution = ExecutionKind.Paged, BlockSize = blockSize, MaxModelLen = maxModelLen };

    /// <summary>The first problem with the policy on its own, naming the field and its allowed range, or null when it is valid.</summary>
    public string? Check()
    {
        if (!Enum.IsDefined(Scheduler))
        {
            return $"scheduler {(int)Scheduler} is not one of prefill-first, chunked";
        }

        if (!Enum.IsDefined(Execution))
        {
            return $"execution {(int)Execution} is not one of padded, paged";
        }

        if (MaxModelLen is < 0 or > MaxTokens)
        {
            return $"maxModelLen {MaxModelLen} is outside 0..{MaxTokens} (0: the largest bucket)";
        }

        if (Scheduler == SchedulerKind.Chunked)
        {
            if (Execution == ExecutionKind.Paged)
            {
                return "chunked prefill with paged execution is not modelled; use execution padded with the chunked scheduler";
            }

            if (MaxNumBatchedTokens is < 1 or > MaxTokens)
            {
                return $"maxNumBatchedTokens {MaxNumBatchedTokens} is outside 1..{MaxTokens}";
            }

            if (MaxNumSeqs is < 1 or > LensCsv.MaxBatch)
            {
                return $"maxNumSeqs {MaxNumSeqs} is outside 1..{LensCsv.MaxBatch}";
            }

            if (TokenBuckets.IsDefaultOrEmpty || TokenBuckets.Length > MaxTokenBuckets)
            {
                return $"tokenBuckets must list 1..{MaxTokenBuckets} step sizes";
            }

            for (var i = 0; i < TokenBuckets.Length; i++)
            {
                if (TokenBuckets[i] is < 1 or > MaxTokens || (i > 0 && TokenBuckets[i] <= TokenBuckets[i - 1]))
                {
                    return $"token bucket #{i + 1} ({TokenBuckets[i]}) must be in 1..{MaxTokens} and above the one before";
                }
            }

            if (TokenBuckets[^1] < MaxNumBatchedTokens)
            {
                return $"the largest token bucket {TokenBuckets[^1]} is below maxNumBatchedTokens {MaxNumBatchedTokens}: a full step would have no graph";
            }
        }
        else if (MaxNumBatchedTokens != 0 || !TokenBuckets.IsDefaultOrEmpty || MaxNumSeqs != 0)
        {
            return "maxNumBatchedTokens, tokenBuckets and maxNumSeqs belong to the chunked scheduler; prefill-first takes max_num_seqs from its batch buckets";
        }

        if (Execution == ExecutionKind.Paged)
        {
            if (BlockSize is < 1 or > MaxTokens)
            {
                return $"blockSize {BlockSize} is outside 1..{MaxTokens}";
            }
        }
        else if (BlockSize != 0)
        {
            return "blockSize belongs to paged execution";
        }

        return null;
    }

    /// <summary>Throws <see cref="ArgumentException"/> with <see cref="Check"/>'s reason when the policy is invalid.</summary>
    public SchedulingPolicy Validated() => Check() is { } reason ? throw new ArgumentException($"scheduling policy: {reason}") : this;

    public bool Equals(SchedulingPolicy? other) =>
        other is not null && Scheduler == other.Scheduler && Execution == other.Execution &&
        MaxNumBatchedTokens == other.MaxNumBatchedTokens && MaxNumSeqs == other.MaxNumSeqs && BlockSize == other.BlockSize &&
        MaxModelLen == other.MaxModelLen && TokenBuckets.AsSpan().SequenceEqual(other.TokenBuckets.AsSpan());

    public override int GetHashCode() =>
        HashCode.Combine(Scheduler, Execution, MaxNumBatchedTokens, MaxNumSeqs, BlockSize, MaxModelLen, TokenBuckets.Length);
}
