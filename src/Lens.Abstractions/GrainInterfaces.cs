using Orleans.Concurrency;

namespace Lens.Abstractions;

/// <summary>What a write to a bucket did: the snapshot after it, measurements added, and ids already seen.</summary>
[GenerateSerializer, Immutable, Alias("lens.BucketWriteResult.v1")]
public sealed record BucketWriteResult(
    [property: Id(0)] BucketSnapshot Snapshot,
    [property: Id(1)] int Added,
    [property: Id(2)] int Duplicates,
    [property: Id(3)] bool FitChanged);

/// <summary>
/// One bucket of one deployment, key <see cref="DeploymentKey.BucketGrainKey"/> (<c>tenant|device|deployment|bucket</c>). Owns its raw measurements
/// (bounded), their fit (<c>BucketFitter.FitBucket</c>), a version and a staleness flag; writes its state once per change.
/// </summary>
[Alias("lens.IBucketGrain")]
public interface IBucketGrain : IGrainWithStringKey
{
    [Alias("GetSnapshot"), ReadOnly]
    Task<BucketSnapshot> GetSnapshotAsync();

    /// <summary>The measurements the fit uses (profile and import sources), oldest first.</summary>
    [Alias("GetMeasurements"), ReadOnly]
    Task<MeasurementRecord[]> GetMeasurementsAsync();

    /// <summary>Telemetry observations held for this bucket (not used by the fit).</summary>
    [Alias("GetTelemetry"), ReadOnly]
    Task<MeasurementRecord[]> GetTelemetryAsync();

    /// <summary>Adds measurements to the fitted data (ids already held are skipped), refits, bumps the version when anything was added.</summary>
    [Alias("AddMeasurements")]
    Task<BucketWriteResult> AddMeasurementsAsync(BucketContext context, MeasurementRecord[] records);

    /// <summary>
    /// Stores one measurement of profiling run <paramref name="runId"/> as pending (durably), and when <paramref name="commit"/> is
    /// set replaces the bucket's profile measurements by the run's, refits and bumps the version. Until then the old fit stays in use.
    /// </summary>
    [Alias("RecordProfile")]
    Task<BucketWriteResult> RecordProfileAsync(BucketContext context, string runId, MeasurementRecord record, bool commit);

    /// <summary>The same for every request of one plan row at once: a group of identical requests released together is one write.</summary>
    [Alias("RecordProfileRows")]
    Task<BucketWriteResult> RecordProfileRowsAsync(BucketContext context, string runId, MeasurementRecord[] records, bool commit);

    /// <summary>Replaces all fitted measurements (a re-profile done elsewhere); idempotent per <paramref name="replaceId"/>; bumps the version.</summary>
    [Alias("ReplaceMeasurements")]
    Task<BucketSnapshot> ReplaceMeasurementsAsync(BucketContext context, string replaceId, MeasurementRecord[] records);

    /// <summary>Stores observed latencies (intake only); returns how many were new.</summary>
    [Alias("AddTelemetry")]
    Task<int> AddTelemetryAsync(MeasurementRecord[] records);

    [Alias("SetStale")]
    Task<BucketSnapshot> SetStaleAsync(bool stale);

    /// <summary>
    /// Stores the bucket's latest drift analysis (its windowed residual statistics). Ignored when the bucket's version is no longer
    /// <see cref="BucketDrift.ModelVersion"/> (it was re-profiled meanwhile: the analysis judged the old fit).
    /// </summary>
    [Alias("RecordDrift")]
    Task<BucketSnapshot> RecordDriftAsync(BucketDrift drift);
}

/// <summary>
/// Watches one deployment (key <see cref="DeploymentKey"/>) against observed latencies: a bounded sliding window of observations,
/// <c>DriftAnalysis.Analyze</c> after every batch, drift statistics written to the bucket grains. Called by the deployment grain;
/// it calls only bucket grains, never back into the deployment (no call cycle).
/// </summary>
[Alias("lens.IDeploymentMonitorGrain")]
public interface IDeploymentMonitorGrain : IGrainWithStringKey
{
    /// <summary>Adds a batch of observations (ids already in the window are skipped), analyses the window and says what drifts.</summary>
    [Alias("Observe")]
    Task<MonitorVerdict> ObserveAsync(BucketContext context, MeasurementRecord[] records);

    [Alias("GetStatus"), ReadOnly]
    Task<MonitorStatus> GetStatusAsync();

    /// <summary>The newest <paramref name="last"/> entries of the health history (all when null), oldest first.</summary>
    [Alias("GetHealthHistory"), ReadOnly]
    Task<HealthHistoryEntry[]> GetHealthHistoryAsync(int? last);

    /// <summary>Appends one analysed window of live traffic (from the traffic monitor) to the health history.</summary>
    [Alias("AppendHistory")]
    Task AppendHistoryAsync(HealthHistoryEntry entry);

    /// <summary>The observations in the window, for refinement.</summary>
    [Alias("GetWindow"), ReadOnly]
    Task<ObservationWindow> GetWindowAsync();
}

/// <summary>
/// One device of one tenant, key <see cref="DeviceKey"/> (<c>tenant|device</c>): the names of its deployments (for listing and for
/// refusing a name taken by a different spec) and the device's profiling queue, which runs one measurement at a time across the
/// whole device (an NPU is exclusive) and resumes after a silo restart. Everything else about a deployment is its
/// <see cref="IDeploymentGrain"/>'s.
/// </summary>
[Alias("lens.IDeviceGrain")]
public interface IDeviceGrain : IGrainWithStringKey
{
    /// <summary>The ids of the device's deployments, sorted (ordinal); <see cref="DeploymentGrains.ListAsync"/> reads each.</summary>
    [Alias("ListDeploymentIds"), ReadOnly]
    Task<string[]> ListDeploymentIdsAsync();
}

/// <summary>
/// One deployment on a device, key <see cref="DeploymentKey"/> (<c>tenant|device|deployment</c>): its spec, its latest profiling
/// run (measured by its device's queue, one row at a time), its model version and the model caches subscribed to it; imports and
/// telemetry go through it to its buckets, and sustained drift re-profiles a bucket. One storage row per deployment.
/// </summary>
[Alias("lens.IDeploymentGrain")]
public interface IDeploymentGrain : IGrainWithStringKey
{
    /// <summary>
    /// Creates the deployment, whose key must be built from <paramref name="spec"/>'s id (<c>{name}-{identity hash}</c>;
    /// <see cref="DeploymentGrains.CreateAsync"/> does). The identical spec again returns the existing one (<c>Created = false</c>); a
    /// different spec under a name in use on the device is a conflict.
    /// </summary>
    [Alias("Create")]
    Task<CreateDeploymentResult> CreateAsync(DeploymentSpec spec);

    [Alias("Get")]
    Task<DeploymentInfo> GetAsync();

    /// <summary>Queues a profiling run of every bucket or one; returns at once. A run already queued for the deployment is returned as is.</summary>
    [Alias("StartProfile")]
    Task<ProfileProgress> StartProfileAsync(ProfileRequest request);

    [Alias("GetProfileProgress"), AlwaysInterleave]
    Task<ProfileProgress> GetProfileProgressAsync();

    /// <summary>Imports measurements made elsewhere: each is placed in its bucket (Core's <c>MeasurementTagger</c>) and the buckets refit.</summary>
    [Alias("ImportMeasurements")]
    Task<IntakeResult> ImportMeasurementsAsync(MeasurementBatch batch);

    /// <summary>
    /// Stores observed production latencies on the buckets they fall in, has the deployment's monitor compare them with the current
    /// model, and re-profiles a bucket alone once its drift is sustained (fits change only through that re-profile).
    /// </summary>
    [Alias("ReportTelemetry")]
    Task<IntakeResult> ReportTelemetryAsync(MeasurementBatch batch);

    /// <summary>
    /// The deployment's bucket context and model version, and a subscription of <paramref name="observer"/> (a silo's model cache) to
    /// every later change of its model, pushed before the call that made the change returns. A subscription lasts while it is renewed
    /// (by calling again) and ends when this activation deactivates (<see cref="IModelObserver.DeploymentLeavingAsync"/>).
    /// </summary>
    [Alias("SubscribeModel"), AlwaysInterleave]
    Task<ModelSubscription> SubscribeModelAsync(IModelObserver observer);

    /// <summary>
    /// Writes costs re-estimated from live traffic into the deployment's model (the traffic monitor calls it when it flags a cell
    /// whose estimate is tight): each replaces its cell's profiled cost, with its provenance, until the cell's bucket is measured
    /// again (an import or a profile run refitting it). Returns the new model version.
    /// </summary>
    [Alias("ApplyTrafficEstimates")]
    Task<long> ApplyTrafficEstimatesAsync(TrafficEstimateRecord[] estimates);

    /// <summary>
    /// Re-profiles one cost cell alone (the traffic monitor calls it for a flagged cell when the operator allows it,
    /// <c>Lens:Grains:ReprofileFlaggedCells</c>): marks the bucket whose plan rows measure the cell stale (the cell's own, or for a
    /// prefill bucket the decode bucket whose pair measures it) and starts a single-bucket run of those rows, groups of the cell's
    /// batch. When it commits, the cell's traffic estimate is dropped and its stale mark cleared. Returns the started run; null when
    /// a run is unfinished (nothing is started: ask again later) or no row measures the cell. A cell not of the deployment is a
    /// validation error naming it.
    /// </summary>
    [Alias("ReprofileCell")]
    Task<ProfileProgress?> ReprofileCellAsync(string cell);

    /// <summary>The costs of the model taken from live traffic, by cell.</summary>
    [Alias("GetTrafficEstimates"), AlwaysInterleave]
    Task<TrafficEstimateRecord[]> GetTrafficEstimatesAsync();

    /// <summary>Per-bucket health against observed latencies (drift statistics, staleness, last profile) and the monitor's status.</summary>
    [Alias("GetHealth")]
    Task<DeploymentHealth> GetHealthAsync();

    /// <summary>The deployment's bounded history of drift analyses, oldest first: the newest <paramref name="last"/> (all when null).</summary>
    [Alias("GetHealthHistory")]
    Task<DeploymentHealthHistory> GetHealthHistoryAsync(int? last);

    /// <summary>Snapshots of every bucket of the deployment, prefill first, each ascending.</summary>
    [Alias("GetBuckets")]
    Task<BucketSnapshot[]> GetBucketsAsync();
}

/// <summary>
/// A silo's cache of composed models (predictors share it), told by deployment grains when a model changes, so that no prediction has
/// to ask its deployment grain whether its model is still current.
/// </summary>
[Alias("lens.IModelObserver")]
public interface IModelObserver : IGrainObserver
{
    /// <summary>The deployment's model is now at <paramref name="version"/> (of deployment activation <paramref name="activation"/>).</summary>
    [Alias("ModelChanged")]
    Task ModelChangedAsync(string deploymentKey, long version, Guid activation);

    /// <summary>The deployment grain's activation is going away and its subscriptions with it: forget what was cached from it.</summary>
    [Alias("DeploymentLeaving")]
    Task DeploymentLeavingAsync(string deploymentKey, Guid activation);
}

/// <summary>
/// Answers predictions by composing bucket snapshots (<c>DeploymentModel.Compose</c>), cached per deployment by model version.
/// Stateless worker, keyed by tenant: every call names a deployment of that tenant.
/// </summary>
[Alias("lens.IPredictorGrain")]
public interface IPredictorGrain : IGrainWithStringKey
{
    [Alias("Predict")]
    Task<PredictionResult> PredictAsync(string deploymentKey, PredictRequest request);

    [Alias("PredictBatch")]
    Task<PredictManyResult> PredictManyAsync(string deploymentKey, PredictManyRequest request);

    /// <summary>The fitted model in the model file format (<c>ModelJson.Serialize</c>).</summary>
    [Alias("GetModelJson")]
    Task<string> GetModelJsonAsync(string deploymentKey);

    /// <summary>Serves a trace or a generated workload on the deployment's fitted model (continuous batching, method.md "Batched serving").</summary>
    [Alias("Simulate"), AlwaysInterleave] // waits on the silo's heavy-work threads; predictions go on meanwhile
    Task<SimulationReport> SimulateAsync(string deploymentKey, SimulateRequest request);

    /// <summary>Capacity planning over deployments of this grain's tenant (another tenant's names are not found).</summary>
    [Alias("Capacity"), AlwaysInterleave] // waits on the silo's heavy-work threads; predictions go on meanwhile
    Task<CapacityReport> CapacityAsync(CapacityRequest request);

    /// <summary>The model of a bucket set never profiled, read from the deployment's cost curves (model file JSON with a predicted block).</summary>
    [Alias("WhatIf"), AlwaysInterleave] // waits on the silo's heavy-work threads; predictions go on meanwhile
    Task<string> WhatIfAsync(string deploymentKey, WhatIfRequest request);

    /// <summary>The advisor's recommendation for a workload (the advice document's JSON, as <c>lens advise</c> writes it).</summary>
    [Alias("Advise"), AlwaysInterleave] // waits on the silo's heavy-work threads; predictions go on meanwhile
    Task<string> AdviseAsync(string deploymentKey, AdviseRequest request);
}
