using Lens.Abstractions;
using Lens.Measurement;

namespace Lens.Grains;

/// <summary>Limits and retry settings of the LENS grains (bound from <c>Lens:Grains</c> by the silo host).</summary>
public sealed class LensGrainOptions
{
    /// <summary>Name of the grain storage provider the grains persist through.</summary>
    public const string StorageName = "lens";

    /// <summary>Most devices one tenant may have: the tenant's device directory is one table row (a device past it is refused, 409).</summary>
    public int MaxDevicesPerTenant { get; set; } = 1000;

    /// <summary>Largest allowed <see cref="MaxDeploymentsPerDevice"/>: the device row holds each one's name and id (at most 117 characters).</summary>
    public const int DeploymentsPerDeviceLimit = 2048;

    /// <summary>
    /// Most deployments on one device (one more is refused, 409). Each deployment is a grain with a storage row of its own; the device's
    /// row keeps only their names and ids, so this may be up to <see cref="DeploymentsPerDeviceLimit"/>.
    /// </summary>
    public int MaxDeploymentsPerDevice { get; set; } = 1000;

    /// <summary>Most fitted measurements a bucket keeps; the oldest go first (state must stay well under a table row's 1 MB).</summary>
    public int MaxMeasurementsPerBucket { get; set; } = 1000;

    /// <summary>Most telemetry observations a bucket keeps; the oldest go first.</summary>
    public int MaxTelemetryPerBucket { get; set; } = 500;

    /// <summary>Most rows (measurements or telemetry observations) in one import.</summary>
    public int MaxRowsPerImport { get; set; } = 10_000;

    /// <summary>Most requests in one batch prediction.</summary>
    public int MaxPredictionsPerCall { get; set; } = 100_000;

    /// <summary>Most requests one simulation may serve (a trace's rows or a generated workload's count).</summary>
    public int MaxSimulateRequests { get; set; } = 1_000_000;

    /// <summary>Most requests in one advice's workload: the advisor simulates it a few dozen times (budgets, batch buckets, replicas).</summary>
    public int MaxAdviseRequests { get; set; } = 20_000;

    /// <summary>
    /// Tries of one planned measurement when the backend fails transiently (<c>MeasurementFailedException.IsTransient</c>): profiling's
    /// one retry budget (<c>Lens.Measurement.MeasurementRetryPolicy</c>); the HTTP backend does not retry on top, so a row costs at most
    /// this many requests (times b for a group).
    /// </summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>Wait before the first retry; doubles on each further one up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Period of the reminder that re-kicks an unfinished profile (after a silo restart or a deactivation). Orleans refuses reminder
    /// periods below its <c>ReminderOptions.MinimumReminderPeriod</c> (1 minute by default); the silo host lowers that to this value.
    /// </summary>
    public TimeSpan ResumeCheckPeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Deployments whose predictors' cached models one predictor activation keeps.</summary>
    public int PredictorCacheSize { get; set; } = 256;

    /// <summary>
    /// How long a silo's model cache (<see cref="ModelCache"/>) keeps a deployment's model without renewing its subscription to the
    /// deployment grain. Changes are pushed at once, so this only bounds how long a change could go unseen if a push were lost (a
    /// deployment grain's silo that dies unnoticed by membership, a push that timed out).
    /// </summary>
    public TimeSpan ModelLease { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Observations per deployment in the monitor's sliding window (the newest are kept; held in memory).</summary>
    public int DriftWindow { get; set; } = 1000;

    /// <summary>Observations that must touch a bucket in the window before it can be judged (<c>DriftOptions.MinObservations</c>).</summary>
    public int DriftMinObservations { get; set; } = 20;

    /// <summary>Standard errors a bucket's own shift must clear (<c>DriftOptions.Z</c>).</summary>
    public double DriftZ { get; set; } = 4;

    /// <summary>Smallest relative shift that counts as drift, whatever the noise (<c>DriftOptions.MinRelativeShift</c>).</summary>
    public double DriftMinRelativeShift { get; set; } = 0.05;

    /// <summary>K: consecutive analyses (one per telemetry batch) that must flag a bucket before it is marked stale and re-profiled.</summary>
    public int DriftConsecutive { get; set; } = 3;

    /// <summary>
    /// Requests of live traffic (OTLP spans) per deployment in one analysed window (<c>TrafficMonitorGrain</c>): a window is analysed
    /// each time this many new requests arrived, over the newest this many. Held in memory (1..1,000,000).
    /// </summary>
    public int TrafficWindow { get; set; } = 10_000;

    /// <summary>Windows running a cost cell must be out of band in before it is flagged and marked stale (1..100).</summary>
    public int TrafficConsecutive { get; set; } = 2;

    /// <summary>
    /// Judged windows that form a cost cell's traffic baseline (2..1000): after them the cell is judged against its own shift in those
    /// windows rather than against its profile (Core's <c>TrafficMonitor</c>).
    /// </summary>
    public int TrafficBaselineWindows { get; set; } = 10;

    /// <summary>Whether sustained drift re-profiles the bucket; when off it is only reported (health, metrics).</summary>
    public bool AutoReprofile { get; set; } = true;

    /// <summary>
    /// Whether a cost cell the live-traffic monitor flags (<see cref="TrafficConsecutive"/> windows out of band beyond the common shift)
    /// is re-profiled alone: a single-cell run of its plan rows (groups of its batch bucket) against the deployment's backend, at most
    /// one per cell and flag, none while a run of the deployment is unfinished (a later window that still flags it asks again). Off
    /// by default: profiling sends requests to the tenant's serving endpoint, which the operator must allow; when off a flagged cell
    /// is marked stale and its cost re-estimated from the traffic only.
    /// </summary>
    public bool ReprofileFlaggedCells { get; set; }

    /// <summary>
    /// Drift analyses per deployment its health history keeps (the newest; one per telemetry batch), persisted with the monitor. A
    /// deployment with very many buckets keeps fewer, so that its stored history stays bounded (<c>Lens.Core.HealthHistory.Capacity</c>).
    /// </summary>
    public int HealthHistoryLength { get; set; } = 288;

    /// <summary>Relative standard deviation of one observation when predictions are refined with telemetry (<c>ModelRefinement.Refine</c>).</summary>
    public double RefinementNoise { get; set; } = 0.05;

    /// <summary>
    /// Threads of the silo's <see cref="HeavyWorkScheduler"/>, which runs heavy calls (simulate, advise, what-if) off the threads
    /// that answer predictions; 0: half the processors, at least one (so on two cores one stays free for predictions).
    /// </summary>
    public int HeavyWorkers { get; set; }

    /// <summary>
    /// Heavy calls (simulate, advise, what-if) one tenant may have running or waiting on one silo (<see cref="HeavyWorkBudget"/>);
    /// one more is answered 429 with <c>Retry-After</c>.
    /// </summary>
    public int MaxHeavyCallsPerTenant { get; set; } = 2;

    /// <summary>
    /// Heavy calls of all tenants together that may be running or waiting on one silo; one more is answered 429. Keep this times the
    /// longest heavy call (about 2 s for a simulation of a million requests) over <see cref="HeavyWorkerThreads"/> under Orleans'
    /// 30-second response timeout, or the last call admitted may time out (503) while it waits.
    /// </summary>
    public int MaxHeavyCallsPerSilo { get; set; } = 8;

    /// <summary>The scheduler's thread count: <see cref="HeavyWorkers"/>, or half the processors (at least one) when it is 0.</summary>
    public int HeavyWorkerThreads => HeavyWorkers > 0 ? HeavyWorkers : Math.Max(1, Environment.ProcessorCount / 2);

    public void Validate()
    {
        if (DriftWindow < 1 || DriftMinObservations < 1 || DriftConsecutive < 1 || !(DriftZ > 0) || !(DriftMinRelativeShift >= 0) ||
            !(RefinementNoise > 0))
        {
            throw new InvalidOperationException(
                "Lens:Grains drift settings are invalid: DriftWindow, DriftMinObservations, DriftConsecutive >= 1, DriftZ > 0, " +
                "DriftMinRelativeShift >= 0, RefinementNoise > 0");
        }

        if (TrafficWindow is < 1 or > 1_000_000 || TrafficConsecutive is < 1 or > 100 || TrafficBaselineWindows is < 2 or > 1000)
        {
            throw new InvalidOperationException(
                $"Lens:Grains:TrafficWindow must be in 1..1000000 (got {TrafficWindow}), TrafficConsecutive in 1..100 (got {TrafficConsecutive}) " +
                $"and TrafficBaselineWindows in 2..1000 (got {TrafficBaselineWindows})");
        }

        if (HealthHistoryLength is < 0 or > DeploymentHealthHistory.MaxLast)
        {
            throw new InvalidOperationException($"Lens:Grains:HealthHistoryLength must be in 0..{DeploymentHealthHistory.MaxLast}; got {HealthHistoryLength}");
        }

        if (MaxMeasurementsPerBucket < 2 || MaxTelemetryPerBucket < 0 || MaxRowsPerImport < 1 || MaxPredictionsPerCall < 1 || PredictorCacheSize < 1 ||
            MaxDevicesPerTenant < 1 || ModelLease <= TimeSpan.Zero || MaxSimulateRequests < 1 || MaxAdviseRequests < 1)
        {
            throw new InvalidOperationException("Lens:Grains limits must be positive (measurements per bucket at least 2)");
        }

        if (HeavyWorkers is < 0 or > 1024 || MaxHeavyCallsPerTenant is < 1 or > 10_000 || MaxHeavyCallsPerSilo < MaxHeavyCallsPerTenant ||
            MaxHeavyCallsPerSilo > 100_000)
        {
            throw new InvalidOperationException(
                "Lens:Grains heavy-call settings are invalid: HeavyWorkers 0..1024 (0: half the processors), MaxHeavyCallsPerTenant 1..10000, " +
                $"MaxHeavyCallsPerSilo from MaxHeavyCallsPerTenant to 100000; got {HeavyWorkers}, {MaxHeavyCallsPerTenant}, {MaxHeavyCallsPerSilo}");
        }

        if (MaxDeploymentsPerDevice is < 1 or > DeploymentsPerDeviceLimit)
        {
            throw new InvalidOperationException(
                $"Lens:Grains:MaxDeploymentsPerDevice must be in 1..{DeploymentsPerDeviceLimit}; got {MaxDeploymentsPerDevice}");
        }

        if (MaxAttempts is < 1 or > MeasurementRetryPolicy.MaxAttemptsLimit || InitialBackoff < TimeSpan.Zero ||
            MaxBackoff < InitialBackoff || ResumeCheckPeriod < TimeSpan.FromSeconds(1))
        {
            throw new InvalidOperationException(
                $"Lens:Grains retry settings are invalid: MaxAttempts in 1..{MeasurementRetryPolicy.MaxAttemptsLimit}, " +
                "0 <= InitialBackoff <= MaxBackoff, ResumeCheckPeriod >= 1 second");
        }
    }
}
