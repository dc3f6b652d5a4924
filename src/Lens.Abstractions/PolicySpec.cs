using System.Text.Json.Serialization;

namespace Lens.Abstractions;

/// <summary>
/// A deployment's scheduling policy on the wire (Core's <c>SchedulingPolicy</c>; method.md, "Scheduling policies"). Absent (null) or
/// all defaults means prefill-first padded, today's scheduler. <see cref="Scheduler"/> is <c>prefill-first</c> or <c>chunked</c>
/// (vLLM V1 chunked prefill: <see cref="MaxNumBatchedTokens"/>, <see cref="TokenBuckets"/> as the step table's rows, the spec's decode
/// buckets as context buckets, <see cref="MaxNumSeqs"/>); <see cref="Execution"/> is <c>padded</c> or <c>paged</c> (vLLM on Gaudi:
/// <see cref="BlockSize"/>, and the spec's decode buckets count KV blocks of the batch). <see cref="MaxModelLen"/> bounds
/// <c>I + O</c> (0: the largest bucket). Validated in Lens.Grains (<c>DeploymentSpecMapping</c>); errors name <c>policy.field</c>.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.PolicySpec.v1")]
public sealed record PolicySpec(
    [property: Id(0)] string Scheduler = PolicySpec.PrefillFirst,
    [property: Id(1)] string Execution = PolicySpec.Padded,
    [property: Id(2)] int MaxNumBatchedTokens = 0,
    [property: Id(3)] int[]? TokenBuckets = null,
    [property: Id(4)] int MaxNumSeqs = 0,
    [property: Id(5)] int BlockSize = 0,
    [property: Id(6)] int MaxModelLen = 0)
{
    public const string PrefillFirst = "prefill-first";
    public const string Chunked = "chunked";
    public const string Padded = "padded";
    public const string Paged = "paged";

    public static readonly IReadOnlyList<string> Schedulers = [PrefillFirst, Chunked];
    public static readonly IReadOnlyList<string> Executions = [Padded, Paged];

    /// <summary>Whether this is prefill-first padded with nothing else set (what an absent policy means).</summary>
    [JsonIgnore]
    public bool IsDefault =>
        (Scheduler is null or "" or PrefillFirst) && (Execution is null or "" or Padded) && MaxNumBatchedTokens == 0 &&
        (TokenBuckets is null or { Length: 0 }) && MaxNumSeqs == 0 && BlockSize == 0 && MaxModelLen == 0;

    /// <summary>Whether the scheduler is chunked prefill.</summary>
    [JsonIgnore]
    public bool IsChunked => Scheduler == Chunked;

    /// <summary>Whether decode steps are bucketed by the batch's KV blocks.</summary>
    [JsonIgnore]
    public bool IsPaged => Execution == Paged;

    /// <summary>Short name for pages and logs: <c>prefill-first padded</c>, <c>prefill-first paged</c>, <c>chunked padded</c>.</summary>
    [JsonIgnore]
    public string Name => $"{(string.IsNullOrEmpty(Scheduler) ? PrefillFirst : Scheduler)} {(string.IsNullOrEmpty(Execution) ? Padded : Execution)}";

    /// <summary>The policy with absent texts replaced by their defaults.</summary>
    public PolicySpec Normalized() => this with
    {
        Scheduler = string.IsNullOrEmpty(Scheduler) ? PrefillFirst : Scheduler,
        Execution = string.IsNullOrEmpty(Execution) ? Padded : Execution,
    };

    /// <summary>The fixed text form that a deployment's identity hash covers.</summary>
    [JsonIgnore]
    public string IdentityText =>
        $"policy={Normalized().Scheduler}/{Normalized().Execution}/tokens={MaxNumBatchedTokens}/buckets={string.Join(',', TokenBuckets ?? [])}" +
        $"/seqs={MaxNumSeqs}/block={BlockSize}/len={MaxModelLen}";

    /// <summary>Field-by-field equality (records compare arrays by reference); null and the default policy are the same.</summary>
    public static bool Same(PolicySpec? a, PolicySpec? b) =>
        ((a is null || a.IsDefault) && (b is null || b.IsDefault)) ||
        (a is not null && b is not null && a.IdentityText == b.IdentityText);
}
