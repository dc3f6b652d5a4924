using Lens.Abstractions;
using Lens.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Utilities;

namespace Lens.Grains;

/// <summary>
/// A device (key <see cref="DeviceKey"/>): its deployments and their profiling. Profiling runs the plan of
/// <see cref="ProfilingPlanner.Create"/> one row at a time on a worker task outside the grain turn; each finished row is stored in
/// its bucket grain, and the index of the next row in this grain's state, before the next row starts. A reminder re-kicks an
/// unfinished run after a silo restart or a deactivation.
/// </summary>
[GrainType("device")]
public sealed class DeviceGrain(
    [PersistentState("device", LensGrainOptions.StorageName)] IPersistentState<DeviceState> state,
    IMeasurementBackendFactory backends,
    TenantBackends tenantBackends,
    IOptions<LensGrainOptions> options,
    TimeProvider time,
    ILogger<DeviceGrain> logger) : Grain, IDeviceGrain, IDeviceProfileSteps, IRemindable
{
    private const string ResumeReminder = "lens-profile-resume";
    private const string ReprofilePrefix = "lens-reprofile:";
    // The device's state is one table row (about 1 MB in all): specs, replay models included, must fit in it.
    private const int MaxDeployments = 32;

    // A push that takes longer than this is given up on; the silo it was for renews its subscription when its lease ends.
    private static readonly TimeSpan PushTimeout = TimeSpan.FromSeconds(5);

    private readonly LensGrainOptions _options = options.Value;
    private readonly ObserverManager<IModelObserver> _modelObservers = new(options.Value.ModelLease * 2, logger);
    private readonly Guid _activation = Guid.NewGuid();
    private readonly Dictionary<string, PlanRow[]> _runRows = [];
    private DeviceKey _key = null!;
    private Guid _workerId;
    private Task? _worker;
    private CancellationTokenSource? _workerStop;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _key = DeviceKey.Parse(this.GetPrimaryKeyString());
        if (state.State.Queue.Count > 0)
        {
            GrainLog.Resuming(logger, _key.Format(), state.State.Queue.Count);
            EnsureWorker();
        }

        if (state.State.Deployments.Count > 0)
        {
            await ListInDirectoryAsync();
        }
    }

    // Devices stored before the directory existed list themselves when they next activate; the device works whatever happens here.
    private async Task ListInDirectoryAsync()
    {
        try
        {
            if (!await DeviceDirectory().RegisterAsync(_key.Device, state.State.Deployments.Count, refuseWhenFull: false))
            {
                GrainLog.DirectoryUnlisted(logger, _key.Format(), "the tenant has the most devices allowed");
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            GrainLog.DirectoryUnlisted(logger, _key.Format(), ex.Message);
        }
    }

    private IDeviceDirectoryGrain DeviceDirectory() => GrainFactory.GetGrain<IDeviceDirectoryGrain>(_key.Tenant);

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        StopWorker();
        var device = _key.Format();
        await PushAsync(o => o.DeviceLeavingAsync(device, _activation));
    }

    public async Task<CreateDeploymentResult> CreateDeploymentAsync(DeploymentSpec spec)
    {
        if (spec is null)
        {
            throw LensException.Validation("spec", "a deployment spec is required");
        }

        spec = spec.Normalized();
        var errors = spec.Validate();
        if (errors.Count > 0)
        {
            throw LensException.Validation(errors);
        }

        // The tenant of this grain's key, not the request, says which backends exist (architecture.md, "Tenancy").
        if (spec.Backend.Kind == BackendSpec.OpenAi && tenantBackends.Check(_key.Tenant, spec.Backend.Name) is { } backendError)
        {
            throw LensException.Validation("backend.name", backendError);
        }

        var s = state.State;
        var sameName = s.Deployments.FirstOrDefault(d => d.Value.Spec.Name == spec.Name);
        if (sameName.Value is { } existing)
        {
            if (existing.Spec.SameAs(spec))
            {
                return new CreateDeploymentResult(Info(sameName.Key, existing), Created: false);
            }

            throw LensException.Conflict(
                $"deployment name '{spec.Name}' on device '{_key.Device}' is taken by a different spec (id {sameName.Key}); " +
                "a changed configuration is a new deployment: give it a new name");
        }

        if (s.Deployments.Count >= MaxDeployments)
        {
            throw LensException.Conflict($"device '{_key.Device}' has {MaxDeployments} deployments, the most allowed");
        }

        // Listed before it is stored: a tenant with the most devices allowed is refused a new one (409) before anything is written.
        await DeviceDirectory().RegisterAsync(_key.Device, s.Deployments.Count + 1, refuseWhenFull: true);
        var entry = new DeploymentEntry { Spec = spec, CreatedAt = time.GetUtcNow() };
        s.Deployments[spec.DeploymentId] = entry;
        await state.WriteStateAsync();
        if (spec.ReprofileEveryMinutes is { } minutes)
        {
            var period = TimeSpan.FromMinutes(minutes);
            await this.RegisterOrUpdateReminder(ReprofilePrefix + spec.DeploymentId, period, period);
        }

        return new CreateDeploymentResult(Info(spec.DeploymentId, entry), Created: true);
    }

    public Task<DeploymentInfo> GetDeploymentAsync(string deploymentId) => Task.FromResult(Info(deploymentId, Entry(deploymentId)));

    public Task<DeploymentInfo[]> ListDeploymentsAsync() =>
        Task.FromResult(state.State.Deployments.OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => Info(d.Key, d.Value)).ToArray());

    public async Task<ProfileProgress> StartProfileAsync(string deploymentId, ProfileRequest request)
    {
        var entry = Entry(deploymentId);
        string? bucket = null;
        if (request?.Bucket is { } text)
        {
            var buckets = entry.Spec.ToBucketSet();
            if (!BucketId.TryParse(text, out var id) || !buckets.Contains(id))
            {
                throw LensException.Validation("bucket", $"bucket '{text}' is not in the deployment's bucket set {buckets}");
            }

            bucket = id.ToString();
        }

        return await StartProfileCoreAsync(deploymentId, entry, bucket);
    }

    public Task<ProfileProgress> GetProfileProgressAsync(string deploymentId)
    {
        _ = Entry(deploymentId);
        return Task.FromResult(state.State.Runs.TryGetValue(deploymentId, out var run) ? run.ToProgress() : ProfileProgress.None(deploymentId));
    }

    public async Task<IntakeResult> ImportMeasurementsAsync(string deploymentId, MeasurementBatch batch)
    {
        var entry = Entry(deploymentId);
        var (batchId, groups) = Prepare(entry, batch, MeasurementSource.Import);
        int added = 0, duplicates = 0;
        var changed = false;
        foreach (var (bucket, records) in groups)
        {
            var result = await BucketGrain(deploymentId, bucket).AddMeasurementsAsync(entry.Spec.Context, records);
            added += result.Added;
            duplicates += result.Duplicates;
            changed |= result.FitChanged;
        }

        if (changed)
        {
            entry.ModelVersion++;
            try
            {
                await state.WriteStateAsync();
            }
            finally
            {
                await PushModelChangedAsync(deploymentId, entry.ModelVersion); // the fits changed in the buckets whatever happened here
            }
        }

        return new IntakeResult(batchId, added, duplicates, [.. groups.Select(g => g.Bucket.ToString())], entry.ModelVersion);
    }

    public async Task<IntakeResult> ReportTelemetryAsync(string deploymentId, MeasurementBatch batch)
    {
        var entry = Entry(deploymentId);
        var (batchId, groups) = Prepare(entry, batch, MeasurementSource.Telemetry);
        var added = 0;
        foreach (var (bucket, records) in groups)
        {
            added += await BucketGrain(deploymentId, bucket).AddTelemetryAsync(records);
        }

        // The monitor calls bucket grains only, never this grain: no call cycle while this turn waits for it.
        var verdict = await Monitor(deploymentId).ObserveAsync(entry.Spec.Context, [.. groups.SelectMany(g => g.Records)]);
        var reprofiling = await ReprofileDriftingAsync(deploymentId, entry, verdict);
        return new IntakeResult(batchId, added, batch.Measurements.Length - added, [.. groups.Select(g => g.Bucket.ToString())], entry.ModelVersion,
            verdict.Drifting, reprofiling);
    }

    public async Task<DeploymentHealth> GetHealthAsync(string deploymentId)
    {
        var entry = Entry(deploymentId);
        var status = await Monitor(deploymentId).GetStatusAsync();
        var snapshots = await GetBucketsAsync(deploymentId);
        var progress = state.State.Runs.TryGetValue(deploymentId, out var run) ? run.ToProgress() : ProfileProgress.None(deploymentId);
        return new DeploymentHealth(deploymentId, entry.ModelVersion, status.WindowObservations, status.Analyses, status.CommonShift,
            status.AnalyzedAt, _options.DriftConsecutive, _options.AutoReprofile, progress,
            [.. snapshots.Select(b => new BucketHealthView(b.Bucket, b.Drift?.Observations ?? 0, b.Drift?.MeanApe, b.Drift?.Shift, b.Drift?.Band,
                b.Drift?.Drifting ?? false, b.Drift?.ConsecutiveDrift ?? 0, b.Stale, b.LastProfiled, b.Version))]);
    }

    public async Task<DeploymentHealthHistory> GetHealthHistoryAsync(string deploymentId, int? last)
    {
        if (last is < 0 or > DeploymentHealthHistory.MaxLast)
        {
            throw LensException.Validation("last", $"last must be in 0..{DeploymentHealthHistory.MaxLast}; got {last}");
        }

        var buckets = Entry(deploymentId).Spec.ToBucketSet().AllBuckets().Select(b => b.ToString()).ToArray();
        var entries = await Monitor(deploymentId).GetHealthHistoryAsync(last);
        return new DeploymentHealthHistory(deploymentId, HealthHistory.Capacity(_options.HealthHistoryLength, buckets.Length),
            _options.DriftConsecutive, buckets, entries);
    }

    public Task<ModelSubscription> SubscribeModelAsync(string deploymentId, IModelObserver observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        var entry = Entry(deploymentId);
        _modelObservers.Subscribe(observer, observer);
        return Task.FromResult(new ModelSubscription(new ModelStamp(entry.Spec.Context, entry.ModelVersion), 
            GrainContext.Address.SiloAddress ?? throw new InvalidOperationException("an activation without a silo"), _activation));
    }

    public async Task<BucketSnapshot[]> GetBucketsAsync(string deploymentId)
    {
        var entry = Entry(deploymentId);
        return await Task.WhenAll(entry.Spec.ToBucketSet().AllBuckets().Select(b => BucketGrain(deploymentId, b).GetSnapshotAsync()));
    }

    public async Task<ProfileStep?> NextStepAsync(Guid workerId) => workerId == _workerId ? await NextStepCoreAsync() : null;

    public async Task<ProfileStep?> CompleteStepAsync(Guid workerId, StepOutcome outcome)
    {
        if (workerId != _workerId || !TryHead(out var run, out var entry))
        {
            return null;
        }

        if (outcome.RunId != run.RunId || outcome.Index != run.NextIndex)
        {
            return await NextStepCoreAsync(); // a stale or repeated completion: the durable index decides
        }

        string? changed = null;
        run.Retries += outcome.Retries;
        if (outcome.Retries > 0)
        {
            LensTelemetry.MeasurementFailures.Add(outcome.Retries, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, "transient"));
        }

        if (outcome.Error is not null)
        {
            LensTelemetry.MeasurementFailures.Add(1, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, "fatal"));
        }

        if (outcome.Error is { } error)
        {
            Finish(run, ProfileState.Failed, error);
        }
        else
        {
            var rows = RowsOf(run, entry.Spec);
            var row = rows[run.NextIndex];
            var commit = LastOfBucket(rows, run.NextIndex);
            var now = time.GetUtcNow();
            MeasurementRecord[] records = outcome.GroupE2eMs is { } group
                ? [.. group.Select((e2e, k) => new MeasurementRecord($"{run.RunId}:{run.NextIndex}:{k}", row.Bucket.ToString(), row.InputLength,
                    row.OutputLength, e2e, outcome.GroupTtftMs?[k], MeasurementSource.Profile, now, row.Batch,
                    Placement.ScopedGroup(run.RunId, run.NextIndex)))]
                : [new MeasurementRecord($"{run.RunId}:{run.NextIndex}", row.Bucket.ToString(), row.InputLength, row.OutputLength,
                    outcome.E2eMs, outcome.TtftMs, MeasurementSource.Profile, now)];

            // The bucket stores the row before this grain advances: a crash in between measures it again under the same ids.
            var result = await BucketGrain(run.DeploymentId, row.Bucket).RecordProfileRowsAsync(entry.Spec.Context, run.RunId, records, commit);
            if (result.FitChanged)
            {
                entry.ModelVersion++;
                changed = run.DeploymentId;
            }

            LensTelemetry.Measurements.Add(1);
            LensTelemetry.DeviceTime.Add(outcome.E2eMs / 1000);
            run.NextIndex++;
            if (run.NextIndex >= run.Total)
            {
                Finish(run, ProfileState.Completed, null);
            }
        }

        try
        {
            await state.WriteStateAsync();
        }
        finally
        {
            if (changed is not null)
            {
                await PushModelChangedAsync(changed, entry.ModelVersion);
            }
        }

        return await NextStepCoreAsync();
    }

    /// <summary>Tells every subscribed model cache that the deployment's model changed; returns once each has heard or timed out.</summary>
    private Task PushModelChangedAsync(string deploymentId, long version)
    {
        var deployment = _key.Deployment(deploymentId).Format();
        return PushAsync(o => o.ModelChangedAsync(deployment, version, _activation));
    }

    private async Task PushAsync(Func<IModelObserver, Task> push)
    {
        _modelObservers.ClearExpired();
        var observers = _modelObservers.ToArray();
        if (observers.Length == 0)
        {
            return;
        }

        var delivered = await Task.WhenAll(observers.Select(async o =>
        {
            try
            {
                await push(o).WaitAsync(PushTimeout);
                return true;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                GrainLog.PushFailed(logger, ex, _key.Format());
                return false;
            }
        }));
        for (var i = 0; i < observers.Length; i++)
        {
            if (!delivered[i])
            {
                _modelObservers.Unsubscribe(observers[i]); // its silo is gone or unreachable; a live one subscribes again
            }
        }
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName.StartsWith(ReprofilePrefix, StringComparison.Ordinal))
        {
            await ReprofileOnScheduleAsync(reminderName);
            return;
        }

        if (reminderName != ResumeReminder)
        {
            return;
        }

        if (state.State.Queue.Count == 0)
        {
            await UnregisterResumeReminderAsync();
            return;
        }

        EnsureWorker();
    }

    private async Task<ProfileProgress> StartProfileCoreAsync(string deploymentId, DeploymentEntry entry, string? bucket)
    {
        var s = state.State;
        if (s.Runs.TryGetValue(deploymentId, out var current) && !current.ToProgress().IsFinished)
        {
            if (current.Bucket == bucket)
            {
                return current.ToProgress(); // asked again while queued or running: the same run
            }

            throw LensException.Conflict(
                $"a profile of {deploymentId} ({current.Bucket ?? "all buckets"}) is {current.State.ToString().ToLowerInvariant()}; " +
                "wait for it to finish");
        }

        var run = new ProfileRun { RunId = Guid.NewGuid().ToString("N"), DeploymentId = deploymentId, Bucket = bucket, State = ProfileState.Queued };
        var rows = RowsOf(run, entry.Spec);
        if (rows.Length == 0)
        {
            _runRows.Remove(run.RunId);
            throw LensException.Validation("bucket",
                $"bucket {bucket} has no profiling rows of its own (its prefill cost comes from a decode bucket's pair); re-profile that decode bucket");
        }

        run.Total = rows.Length;
        s.Runs[deploymentId] = run;
        s.Queue.Add(deploymentId);
        await state.WriteStateAsync();
        GrainLog.RunQueued(logger, run.RunId, deploymentId, _key.Format(), run.Total, bucket ?? "all buckets");
        EnsureWorker();
        await this.RegisterOrUpdateReminder(ResumeReminder, _options.ResumeCheckPeriod, _options.ResumeCheckPeriod);
        return run.ToProgress();
    }

    /// <summary>
    /// Sustained drift (see <see cref="DeploymentMonitorGrain"/>): marks the most shifted such bucket stale and re-profiles it alone,
    /// through the existing single-bucket run (<see cref="StartProfileCoreAsync"/>),
    /// unless auto re-profiling is off or a run of the deployment is unfinished (the bucket's count stays at or above K, so the next
    /// batch after that run asks again). A prefill bucket with no plan rows of its own is re-profiled through the decode bucket whose
    /// pair measures its cost. Returns the bucket whose run was started, or null.
    /// </summary>
    private async Task<string?> ReprofileDriftingAsync(string deploymentId, DeploymentEntry entry, MonitorVerdict verdict)
    {
        if (!_options.AutoReprofile || verdict.Sustained.Length == 0 || entry.Spec.IsBatched ||
            (state.State.Runs.TryGetValue(deploymentId, out var current) && !current.ToProgress().IsFinished))
        {
            return null;
        }

        var buckets = entry.Spec.ToBucketSet();
        var plan = entry.Spec.CreatePlan();
        var drifting = BucketId.Parse(verdict.Sustained[0]);
        var target = plan.RowsFor(drifting).Any()
            ? drifting
            : plan.Rows.Where(r => r.Bucket.Kind == BucketKind.Decode && drifting.Kind == BucketKind.Prefill &&
                                   buckets.Prefill[buckets.PrefillIndex(r.InputLength)] == drifting.Edge)
                .Select(r => (BucketId?)r.Bucket).FirstOrDefault();
        if (target is not { } bucket)
        {
            return null;
        }

        await BucketGrain(deploymentId, bucket).SetStaleAsync(true); // the run's commit clears it
        GrainLog.DriftReprofile(logger, deploymentId, _key.Format(), drifting.ToString(), bucket.ToString());
        LensTelemetry.Reprofiles.Add(1, LensTelemetry.Deployment(_key.Tenant, _key.Device, deploymentId), LensTelemetry.Bucket(drifting.ToString()));
        await StartProfileCoreAsync(deploymentId, entry, bucket.ToString());
        return bucket.ToString();
    }

    /// <summary>A scheduled re-profile of every bucket; skipped while a run of the deployment is unfinished (ticks may repeat).</summary>
    private async Task ReprofileOnScheduleAsync(string reminderName)
    {
        var deploymentId = reminderName[ReprofilePrefix.Length..];
        var s = state.State;
        if (!s.Deployments.TryGetValue(deploymentId, out var entry) || entry.Spec.ReprofileEveryMinutes is null)
        {
            if (await this.GetReminder(reminderName) is { } stale)
            {
                await this.UnregisterReminder(stale);
            }

            return;
        }

        if (s.Runs.TryGetValue(deploymentId, out var current) && !current.ToProgress().IsFinished)
        {
            return;
        }

        await StartProfileCoreAsync(deploymentId, entry, bucket: null);
    }

    private async Task<ProfileStep?> NextStepCoreAsync()
    {
        if (!TryHead(out var run, out var entry))
        {
            _workerId = Guid.Empty; // this worker ends; the next queued run starts a new one
            await UnregisterResumeReminderAsync();
            return null;
        }

        if (run.State == ProfileState.Queued)
        {
            run.State = ProfileState.Running;
            run.StartedAt = time.GetUtcNow();
            await state.WriteStateAsync();
        }

        var row = RowsOf(run, entry.Spec)[run.NextIndex];
        return new ProfileStep(run.RunId, run.DeploymentId, run.NextIndex, row.Bucket.ToString(), row.InputLength, row.OutputLength,
            entry.Spec.Backend, row.Batch);
    }

    private bool TryHead(out ProfileRun run, out DeploymentEntry entry)
    {
        var s = state.State;
        while (s.Queue.Count > 0)
        {
            var id = s.Queue[0];
            if (s.Deployments.TryGetValue(id, out entry!) && s.Runs.TryGetValue(id, out run!) && !run.ToProgress().IsFinished)
            {
                return true;
            }

            s.Queue.RemoveAt(0); // finished or gone: nothing to run
        }

        run = null!;
        entry = null!;
        return false;
    }

    private void Finish(ProfileRun run, ProfileState final, string? error)
    {
        run.State = final;
        run.LastError = error;
        run.FinishedAt = time.GetUtcNow();
        state.State.Queue.Remove(run.DeploymentId);
        _runRows.Remove(run.RunId);
        GrainLog.RunFinished(logger, run.RunId, run.DeploymentId, _key.Format(), final.ToString(), run.NextIndex, run.Total);
    }

    private void EnsureWorker()
    {
        if (state.State.Queue.Count == 0 || (_workerId != Guid.Empty && _worker is { IsCompleted: false }))
        {
            return;
        }

        StopWorker();
        var workerId = _workerId = Guid.NewGuid();
        var stop = _workerStop = new CancellationTokenSource();
        var self = this.AsReference<IDeviceProfileSteps>();
        var device = _key.Format();

        // Task.Run leaves the grain's scheduler: the measurement runs outside any grain turn, each step calls back in.
        _worker = Task.Run(() => ProfileWorker.RunAsync(self, workerId, backends, _options, time, logger, _key.Tenant, device, stop.Token), CancellationToken.None);
    }

    private void StopWorker()
    {
        _workerId = Guid.Empty;
        if (_workerStop is { } stop)
        {
            stop.Cancel();
            stop.Dispose();
            _workerStop = null;
        }
    }

    private async Task UnregisterResumeReminderAsync()
    {
        if (await this.GetReminder(ResumeReminder) is { } reminder)
        {
            await this.UnregisterReminder(reminder);
        }
    }

    private PlanRow[] RowsOf(ProfileRun run, DeploymentSpec spec)
    {
        if (!_runRows.TryGetValue(run.RunId, out var rows))
        {
            var plan = spec.CreatePlan(); // deterministic: the same spec always gives the same rows, so an index survives restarts
            rows = run.Bucket is null ? [.. plan.Rows] : [.. plan.RowsFor(BucketId.Parse(run.Bucket))];
            _runRows[run.RunId] = rows;
        }

        return rows;
    }

    private static bool LastOfBucket(PlanRow[] rows, int index)
    {
        for (var i = index + 1; i < rows.Length; i++)
        {
            if (rows[i].Bucket == rows[index].Bucket)
            {
                return false;
            }
        }

        return true;
    }

    private (string BatchId, List<(BucketId Bucket, MeasurementRecord[] Records)> Groups) Prepare(DeploymentEntry entry, MeasurementBatch batch,
        MeasurementSource source)
    {
        var placed = Placement.Place(entry.Spec.ToBucketSet(), batch, _options.MaxRowsPerImport);
        var batchId = batch.Id ?? Guid.NewGuid().ToString("N");
        var now = time.GetUtcNow();
        var records = batch.Measurements.Select((m, i) => new MeasurementRecord($"{batchId}:{i}", placed[i].ToString(), m.InputLength,
            m.OutputLength, m.E2eMs, m.TtftMs, source, now, m.Batch, Placement.ScopedGroup(batchId, m.Group))).ToArray();
        var groups = records.GroupBy(r => r.Bucket).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => (BucketId.Parse(g.Key), g.ToArray())).ToList();
        return (batchId, groups);
    }

    private DeploymentEntry Entry(string deploymentId) =>
        deploymentId is not null && state.State.Deployments.TryGetValue(deploymentId, out var entry)
            ? entry
            : throw LensException.NotFound($"deployment '{deploymentId}' does not exist on device '{_key.Device}'");

    private IDeploymentMonitorGrain Monitor(string deploymentId) =>
        GrainFactory.GetGrain<IDeploymentMonitorGrain>(_key.Deployment(deploymentId).Format());

    private IBucketGrain BucketGrain(string deploymentId, BucketId bucket) =>
        GrainFactory.GetGrain<IBucketGrain>(_key.Deployment(deploymentId).Bucket(bucket).Format());

    private DeploymentInfo Info(string id, DeploymentEntry entry) =>
        new(id, _key.Device, entry.Spec, entry.CreatedAt, entry.ModelVersion, [.. entry.Spec.ToBucketSet().AllBuckets().Select(b => b.ToString())]);
}
