namespace Lens.Abstractions;

/// <summary>Where a profiling run stands.</summary>
[GenerateSerializer, Alias("lens.ProfileState")]
public enum ProfileState
{
    /// <summary>Never profiled.</summary>
    None,

    /// <summary>Waiting for another run on the same device (an NPU is exclusive).</summary>
    Queued,

    Running,
    Completed,
    Failed,
}

/// <summary>Start profiling a deployment: every bucket (<see cref="Bucket"/> null) or one bucket alone (e.g. <c>decode-256</c>).</summary>
[GenerateSerializer, Immutable, Alias("lens.ProfileRequest.v1")]
public sealed record ProfileRequest([property: Id(0)] string? Bucket = null);

/// <summary>
/// Progress of the latest profiling run of a deployment: <see cref="Done"/> of <see cref="Total"/> plan rows finished (each one
/// stored in its bucket before the next starts), transient faults retried, and the last error.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.ProfileProgress.v1")]
public sealed record ProfileProgress(
    [property: Id(0)] string Deployment,
    [property: Id(1)] string? RunId,
    [property: Id(2)] ProfileState State,
    [property: Id(3)] string? Bucket,
    [property: Id(4)] int Done,
    [property: Id(5)] int Total,
    [property: Id(6)] int Retries,
    [property: Id(7)] string? LastError,
    [property: Id(8)] DateTimeOffset? StartedAt,
    [property: Id(9)] DateTimeOffset? FinishedAt)
{
    public bool IsFinished => State is ProfileState.Completed or ProfileState.Failed;

    public static ProfileProgress None(string deployment) => new(deployment, null, ProfileState.None, null, 0, 0, 0, null, null, null);
}
