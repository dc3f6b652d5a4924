using Lens.Abstractions;

namespace Lens.Grains;

/// <summary>
/// The stored state of a device: its deployments' names and ids, and the queue of deployments whose profiling run is unfinished.
/// <see cref="Deployments"/> and <see cref="Runs"/> are what the device grain stored before each deployment had a grain of its own
/// (all specs in this one row); a device that loads them hands each to its deployment grain once and empties them.
/// </summary>
[GenerateSerializer, Alias("lens.DeviceState.v1")]
public sealed class DeviceState
{
    /// <summary>Old shape only: deployments by id (<c>{name}-{identity hash}</c>), not yet handed to their deployment grains.</summary>
    [Id(0)]
    public Dictionary<string, DeploymentEntry> Deployments { get; set; } = [];

    /// <summary>Old shape only: the latest profiling run of each deployment in <see cref="Deployments"/>, by deployment id.</summary>
    [Id(1)]
    public Dictionary<string, ProfileRun> Runs { get; set; } = [];

    /// <summary>Deployment ids whose latest run is unfinished, in the order they run (one measurement at a time per device).</summary>
    [Id(2)]
    public List<string> Queue { get; set; } = [];

    /// <summary>The id of each deployment on the device, by deployment name (a name belongs to one spec identity).</summary>
    [Id(3)]
    public Dictionary<string, string>? Names { get; set; } = [];
}

/// <summary>A deployment as the old device row held it (see <see cref="DeviceState.Deployments"/>).</summary>
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

/// <summary>The stored state of a deployment grain: its spec (null until created), model version and latest profiling run.</summary>
[GenerateSerializer, Alias("lens.DeploymentState.v1")]
public sealed class DeploymentState
{
    [Id(0)]
    public DeploymentSpec? Spec { get; set; }

    [Id(1)]
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>Grows whenever any bucket's fitted data change: what predictors compare their cache with.</summary>
    [Id(2)]
    public long ModelVersion { get; set; }

    /// <summary>The latest profiling run, or null when never profiled.</summary>
    [Id(3)]
    public ProfileRun? Run { get; set; }

    /// <summary>Costs taken from live traffic instead of the buckets' fits, by cell (absent: none).</summary>
    [Id(4)]
    public Dictionary<string, TrafficEstimateRecord>? TrafficEstimates { get; set; }
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

    /// <summary>
    /// The cost cell this run re-profiles because live traffic flagged it (<see cref="Bucket"/> is the bucket whose rows measure
    /// it); null for other runs. Its commit drops the cell's traffic estimate and clears its stale mark.
    /// </summary>
    [Id(10)]
    public string? Cell { get; set; }

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

/// <summary>
/// The rows of one deployment's profiling run, as a profile worker asks for them (<see cref="ProfileWorker"/>): the device's worker
/// calls it for the deployment at the head of the device's queue, each step from outside any grain turn, so no measurement holds one.
/// </summary>
[Alias("lens.IDeviceProfileSteps")]
public interface IDeviceProfileSteps : IGrainWithStringKey
{
    /// <summary>The row to measure next, or null when there is none (or <paramref name="workerId"/> is no longer the run's worker).</summary>
    [Alias("NextStep")]
    Task<ProfileStep?> NextStepAsync(Guid workerId);

    /// <summary>Stores a finished row in its bucket, advances the run durably, and returns the next row.</summary>
    [Alias("CompleteStep")]
    Task<ProfileStep?> CompleteStepAsync(Guid workerId, StepOutcome outcome);
}

/// <summary>
/// The device grain's side for its deployment grains and its own worker. Deployment grains call it (never the reverse within a turn),
/// so there is no call cycle between the two non-reentrant grains.
/// </summary>
[Alias("lens.IDeviceSchedule")]
public interface IDeviceSchedule : IGrainWithStringKey
{
    /// <summary>
    /// Records a deployment before its grain stores its spec: the name must be free or already this id's (idempotent); refused
    /// (<c>Conflict</c>) when it is another id's, or when the device has <see cref="LensGrainOptions.MaxDeploymentsPerDevice"/>.
    /// </summary>
    [Alias("AddDeployment")]
    Task AddDeploymentAsync(string name, string deploymentId);

    /// <summary>Queues the deployment's unfinished run behind the others of the device (idempotent) and makes sure a worker runs.</summary>
    [Alias("EnqueueProfile")]
    Task EnqueueProfileAsync(string deploymentId);

    /// <summary>
    /// For the device's worker: drops <paramref name="finished"/> from the queue (its run ended) and returns the deployment to profile
    /// next, or null when the queue is empty (the worker then ends) or <paramref name="workerId"/> is no longer the device's worker.
    /// </summary>
    [Alias("NextDeployment")]
    Task<string?> NextDeploymentAsync(Guid workerId, string? finished);

    /// <summary>An old-shape entry (<see cref="DeviceState.Deployments"/>) for its deployment grain to adopt, or null.</summary>
    [Alias("TakeLegacy")]
    Task<LegacyDeployment?> TakeLegacyAsync(string deploymentId);

    /// <summary>The deployment grain has stored what <see cref="TakeLegacyAsync"/> gave it: the device forgets its old-shape copy.</summary>
    [Alias("LegacyMoved")]
    Task LegacyMovedAsync(string deploymentId);
}

/// <summary>What the old device row held of one deployment.</summary>
[GenerateSerializer, Alias("lens.LegacyDeployment.v1")]
public sealed record LegacyDeployment([property: Id(0)] DeploymentEntry Entry, [property: Id(1)] ProfileRun? Run);

/// <summary>A deployment grain's side of the hand-over from the old device row.</summary>
[Alias("lens.IDeploymentAdoption")]
public interface IDeploymentAdoption : IGrainWithStringKey
{
    /// <summary>Takes the deployment's old-shape entry from its device if this grain holds nothing yet; either way tells the device it moved.</summary>
    [Alias("AdoptLegacy")]
    Task AdoptLegacyAsync();
}
