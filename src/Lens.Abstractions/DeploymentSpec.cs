using System.Security.Cryptography;
using System.Text;

namespace Lens.Abstractions;

/// <summary>
/// How to reach the device that a deployment runs on, to time requests (architecture.md, layer 2). <see cref="Kind"/> is one of
/// <c>openai</c> (an OpenAI-compatible endpoint the operator configured for the tenant, named by <see cref="Name"/>, serving
/// <see cref="ModelName"/>), <c>reference</c> (the built-in engine, profile <see cref="EngineProfile"/>) or <c>replay</c> (a fitted
/// model file's JSON in <see cref="ModelJson"/>, timed without waiting, with a one-sided <see cref="Noise"/>). Never holds a secret
/// nor an address: where an <c>openai</c> backend is and which key it is sent are the operator's settings under the tenant
/// (<c>Lens:Tenants:{tenant}:Backends:{name}</c>), resolved through the tenant of the deployment grain's key, so a tenant can reach
/// only what the operator gave it. <see cref="Endpoint"/> and <see cref="ApiKeyEnvironmentVariable"/> are kept only to read specs
/// stored before that rule: a new spec that sets them is refused, and a stored one that has them is never called.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.BackendSpec.v1")]
public sealed record BackendSpec(
    [property: Id(0)] string Kind,
    [property: Id(1)] string? Endpoint = null,
    [property: Id(2)] string? ModelName = null,
    [property: Id(3)] string? ApiKeyEnvironmentVariable = null,
    [property: Id(4)] string? EngineProfile = null,
    [property: Id(5)] string? ModelJson = null,
    [property: Id(6)] double Noise = 0,
    [property: Id(7)] int Seed = 0,
    [property: Id(8)] string? Name = null)
{
    public const string OpenAi = "openai";
    public const string Reference = "reference";
    public const string Replay = "replay";

    /// <summary>Longest replayed model JSON kept in a deployment's spec (the device's state is one storage row).</summary>
    public const int MaxModelJsonLength = 24 * 1024;

    public static readonly IReadOnlyList<string> Kinds = [OpenAi, Reference, Replay];
}

/// <summary>
/// What a bucket grain needs to fit itself: the deployment's bucket sets, decode convention and repeat statistic.
/// The convention is <c>after-append</c> or <c>before-append</c>; the statistic <c>min</c>, <c>median</c>, <c>mean</c> or <c>pNN</c>.
/// <see cref="Policy"/> (null: prefill-first padded) is the deployment's scheduling policy: under any other, the decode buckets are
/// block buckets (paged) or context buckets with the token buckets as <see cref="BatchBuckets"/> (chunked), and the model is one fit
/// over every bucket's measurements.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.BucketContext.v1")]
public sealed record BucketContext(
    [property: Id(0)] int[] PrefillBuckets,
    [property: Id(1)] int[] DecodeBuckets,
    [property: Id(2)] string Convention,
    [property: Id(3)] string Statistic,
    [property: Id(4)] int[]? BatchBuckets = null,
    [property: Id(5)] PolicySpec? Policy = null)
{
    public bool SameAs(BucketContext? other) =>
        other is not null && PrefillBuckets.AsSpan().SequenceEqual(other.PrefillBuckets) &&
        DecodeBuckets.AsSpan().SequenceEqual(other.DecodeBuckets) && Convention == other.Convention && Statistic == other.Statistic &&
        (BatchBuckets ?? [1]).AsSpan().SequenceEqual(other.BatchBuckets ?? [1]) && PolicySpec.Same(Policy, other.Policy);
}

/// <summary>Text forms of Core's <c>DecodeConvention</c> (parsed in Lens.Grains, <c>DeploymentSpecMapping</c>).</summary>
public static class Conventions
{
    public const string AfterAppend = "after-append";
    public const string BeforeAppend = "before-append";
}

/// <summary>
/// One compiled deployment on a device (method.md, "Terms": a different configuration is a different deployment).
/// Its identity (<see cref="IdentityHash"/>) covers the model, both bucket sets, the convention, batch size, tensor-parallel degree,
/// SDK/compiler version, dtype and batch buckets: change any of them and it is a new deployment with a new id, never an overwrite.
/// <see cref="BatchBuckets"/> (null: <c>[1]</c>, one request at a time) are the compiled batch sizes of continuous batching, the
/// largest being max_num_seqs (method.md, "Batched serving"); a batch-1 deployment's id is what it was before batch buckets existed.
/// <see cref="Policy"/> (null: prefill-first padded) is the serving stack's scheduling policy, part of the identity only when it is
/// another policy, so every deployment created before policies existed keeps its id. Under paged execution the decode buckets are
/// block buckets (KV blocks of the batch); under the chunked scheduler they are context buckets and the policy's token buckets are
/// the step table's rows (<see cref="BatchBuckets"/> left out, or equal to them).
/// <see cref="Statistic"/>, <see cref="Repeats"/>, <see cref="MaxSpan"/> and <see cref="Seed"/> configure profiling
/// (<c>ProfilingPlanner</c>); <see cref="Backend"/> says how to time requests; <see cref="ReprofileEveryMinutes"/>, when set,
/// profiles every bucket again on that schedule (a durable reminder).
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.DeploymentSpec.v1")]
public sealed record DeploymentSpec(
    [property: Id(0)] string Name,
    [property: Id(1)] string Model,
    [property: Id(2)] int[] PrefillBuckets,
    [property: Id(3)] int[] DecodeBuckets,
    [property: Id(4)] BackendSpec Backend,
    [property: Id(5)] string Convention = Conventions.AfterAppend,
    [property: Id(6)] int BatchSize = 1,
    [property: Id(7)] int TensorParallel = 1,
    [property: Id(8)] string SdkVersion = "",
    [property: Id(9)] string Dtype = "",
    [property: Id(10)] string Statistic = "min",
    [property: Id(11)] int Repeats = 1,
    [property: Id(12)] int? MaxSpan = null,
    [property: Id(13)] int Seed = 0,
    [property: Id(14)] int? ReprofileEveryMinutes = null,
    [property: Id(15)] int[]? BatchBuckets = null,
    [property: Id(16)] PolicySpec? Policy = null)
{
    /// <summary>Most batch buckets a deployment may have.</summary>
    public const int MaxBatchBuckets = 64;

    /// <summary>Largest batch bucket (max_num_seqs) a deployment may have.</summary>
    public const int MaxBatch = 4096;
    /// <summary>Longest deployment name: the id appends '-' and 10 hex digits and must stay a valid name.</summary>
    public const int MaxNameLength = LensNames.MaxLength - 11;

    public BucketContext Context => Policy is { IsDefault: false } policy
        ? new(PrefillBuckets, DecodeBuckets, Convention, Statistic, policy.IsChunked ? policy.TokenBuckets : IsBatched ? BatchBuckets : null, policy)
        : new(PrefillBuckets, DecodeBuckets, Convention, Statistic, IsBatched ? BatchBuckets : null);

    /// <summary>Whether the deployment has batch buckets other than <c>[1]</c>.</summary>
    public bool IsBatched => BatchBuckets is { Length: > 0 } b && !(b.Length == 1 && b[0] == 1);

    /// <summary>First 10 hex digits of SHA-256 over the identity fields in a fixed text form.</summary>
    public string IdentityHash
    {
        get
        {
            var text = string.Join('\n', "lens-deployment-identity/1", Model, string.Join(',', PrefillBuckets ?? []),
                string.Join(',', DecodeBuckets ?? []), Convention, BatchSize, TensorParallel, SdkVersion, Dtype);
            if (IsBatched)
            {
                text += "\nbatch=" + string.Join(',', BatchBuckets!); // only then: batch-1 ids stay what they were
            }

            if (Policy is { IsDefault: false } policy)
            {
                text += "\n" + policy.IdentityText; // only then: prefill-first padded ids stay what they were
            }

            return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..10];
        }
    }

    /// <summary>The deployment id: <c>{name}-{identity hash}</c>.</summary>
    public string DeploymentId => $"{Name}-{IdentityHash}";

    /// <summary>The spec with absent optional texts replaced by their defaults, so that equal specs compare equal: the default policy
    /// is no policy, and a chunked spec's batch buckets equal to its token buckets are left out (they are derived from them).</summary>
    public DeploymentSpec Normalized() => this with
    {
        BatchBuckets = Policy is { IsChunked: true, TokenBuckets: { } tokens } && BatchBuckets is { } batch && batch.AsSpan().SequenceEqual(tokens)
            ? null : BatchBuckets,
        Convention = string.IsNullOrEmpty(Convention) ? Conventions.AfterAppend : Convention,
        SdkVersion = SdkVersion ?? "",
        Dtype = Dtype ?? "",
        Statistic = string.IsNullOrEmpty(Statistic) ? "min" : Statistic,
        Policy = Policy is null || Policy.IsDefault ? null : Policy.Normalized(),
    };

    /// <summary>Field-by-field equality (records compare arrays by reference).</summary>
    public bool SameAs(DeploymentSpec? other) =>
        other is not null &&
        this with { PrefillBuckets = Array.Empty<int>(), DecodeBuckets = Array.Empty<int>(), BatchBuckets = null, Policy = null } ==
        other with { PrefillBuckets = Array.Empty<int>(), DecodeBuckets = Array.Empty<int>(), BatchBuckets = null, Policy = null } &&
        PolicySpec.Same(Policy, other.Policy) &&
        (PrefillBuckets ?? []).AsSpan().SequenceEqual(other.PrefillBuckets ?? []) &&
        (DecodeBuckets ?? []).AsSpan().SequenceEqual(other.DecodeBuckets ?? []) &&
        (IsBatched ? BatchBuckets! : [1]).AsSpan().SequenceEqual(other.IsBatched ? other.BatchBuckets! : [1]);
}

/// <summary>A deployment as stored on its device.</summary>
[GenerateSerializer, Immutable, Alias("lens.DeploymentInfo.v1")]
public sealed record DeploymentInfo(
    [property: Id(0)] string Id,
    [property: Id(1)] string Device,
    [property: Id(2)] DeploymentSpec Spec,
    [property: Id(3)] DateTimeOffset CreatedAt,
    [property: Id(4)] long ModelVersion,
    [property: Id(5)] string[] Buckets);

/// <summary>What creating a deployment did: <see cref="Created"/> is false when the identical spec already existed.</summary>
[GenerateSerializer, Immutable, Alias("lens.CreateDeploymentResult.v1")]
public sealed record CreateDeploymentResult([property: Id(0)] DeploymentInfo Deployment, [property: Id(1)] bool Created);
