using Lens.Abstractions;

namespace Lens.Grains;

/// <summary>The stored state of a device: its deployments, the latest profiling run of each, and the queue of unfinished runs.</summary>
[GenerateSerializer, Alias("lens.DeviceState.v1")]
public sealed class DeviceState
{
    /// <summary>Deployments by id (<c>{name}-{identity hash}</c>).</summary>
    [Id(0)]
    public Dictionary<string, DeploymentEntry> Deployments { get; set; } = [];

    /// <summary>The latest profiling run of each deployment, by deployment id.</summary>
    [Id(1)]
    public Dictionary<string, ProfileRun> Runs { get; set; } = [];

    /// <summary>Deployment ids whose latest run is unfinished, in the order they run (one measurement at a time per device).</summary>
    [Id(2)]
    public List<string> Queue { get; set; } = [];
}

[GenerateSerializer, Alias("lens.DeploymentEntry.v1")]
public sealed class DeploymentEntry
{
    [Id(0)]
    public DeploymentSpec Spec { get; set; } = null!;

    [Id(1)]
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>Grows whenever any bucket's fitted data change: what predictors compare their cache with.</summary>
    [Id(2)]
    public long ModelVersion { get; set; }
}

/// <summary>One profiling run: the plan rows it covers (all, or one bucket's) and the durable index of the next row to measure.</summary>
[GenerateSerializer, Alias("lens.ProfileRun.v1")]
public sealed class ProfileRun
{
    [Id(0)]
    public string RunId { get; set; } = "";

    [Id(1)]
    public string DeploymentId { get; set; } = "";

    /// <summary>The one bucket re-profiled, or null for every bucket.</summary>
    [Id(2)]
    public string? Bucket { get; set; }

    [Id(3)]
    public int Total { get; set; }

    /// <summary>Index (in the run's rows) of the next row to measure; every row before it is stored in its bucket.</summary>
    [Id(4)]
    public int NextIndex { get; set; }

    [Id(5)]
    public int Retries { get; set; }

    [Id(6)]
    public ProfileState State { get; set; }

    [Id(7)]
    public string? LastError { get; set; }

    [Id(8)]
    public DateTimeOffset? StartedAt { get; set; }

    [Id(9)]
    public DateTimeOffset? FinishedAt { get; set; }

    public ProfileProgress ToProgress() =>
        new(DeploymentId, RunId, State, Bucket, NextIndex, Total, Retries, LastError, StartedAt, FinishedAt);
}

/// <summary>One row for the profile worker to measure.</summary>
[GenerateSerializer, Immutable, Alias("lens.ProfileStep.v1")]
public sealed record ProfileStep(
    [property: Id(0)] string RunId,
    [property: Id(1)] string DeploymentId,
    [property: Id(2)] int Index,
    [property: Id(3)] string Bucket,
    [property: Id(4)] int InputLength,
    [property: Id(5)] int OutputLength,
    [property: Id(6)] BackendSpec Backend,
    [property: Id(7)] int Batch = 1);

/// <summary>What measuring a <see cref="ProfileStep"/> gave: the latencies, or the error that ended the run.</summary>
[GenerateSerializer, Immutable, Alias("lens.StepOutcome.v1")]
public sealed record StepOutcome(
    [property: Id(0)] string RunId,
    [property: Id(1)] int Index,
    [property: Id(2)] double E2eMs,
    [property: Id(3)] double? TtftMs,
    [property: Id(4)] int Retries,
    [property: Id(5)] string? Error,
    [property: Id(6)] double[]? GroupE2eMs = null,
    [property: Id(7)] double?[]? GroupTtftMs = null);

/// <summary>The device grain's side of its profile worker: each step calls back in, so no measurement holds a grain turn.</summary>
[Alias("lens.IDeviceProfileSteps")]
public interface IDeviceProfileSteps : IGrainWithStringKey
{
    /// <summary>The row to measure next, or null when there is none (or <paramref name="workerId"/> is no longer the device's worker).</summary>
    [Alias("NextStep")]
    Task<ProfileStep?> NextStepAsync(Guid workerId);

    /// <summary>Stores a finished row in its bucket, advances the run durably, and returns the next row.</summary>
    [Alias("CompleteStep")]
    Task<ProfileStep?> CompleteStepAsync(Guid workerId, StepOutcome outcome);
}
