using Lens.Abstractions;
using Lens.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>
/// One deployment on a device (key <see cref="DeploymentKey"/>): its spec, model version, latest profiling run and the model caches
/// subscribed to it, in a storage row of its own. Imports and telemetry go through it to its bucket grains; profiling is in
/// <c>DeploymentGrain.Profiling.cs</c>.
/// <para>
/// Calls between this grain and its device grain go one way only within a turn: this grain calls the device (to record its name, to
/// queue a run, to adopt an old-shape entry); the device never calls a deployment grain from a turn, only from its worker task,
/// which runs outside any turn. So the two non-reentrant grains can never wait on each other.
/// </para>
/// </summary>
[GrainType("deployment")]
public sealed partial class DeploymentGrain(
    [PersistentState("deployment", LensGrainOptions.StorageName)] IPersistentState<DeploymentState> state,
    TenantBackends tenantBackends,
    IOptions<LensGrainOptions> options,
    TimeProvider time,
    ILogger<DeploymentGrain> logger) : Grain, IDeploymentGrain, IDeviceProfileSteps, IDeploymentAdoption, IRemindable
{
    private readonly LensGrainOptions _options = options.Value;
    private DeploymentKey _key = null!;
    private ModelPublisher _models = null!;
    private Task? _adopted;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _key = DeploymentKey.Parse(this.GetPrimaryKeyString());
        _models = new ModelPublisher(_key.Format(), _options.ModelLease, logger);
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken) => _models.LeavingAsync();

    public async Task<CreateDeploymentResult> CreateAsync(DeploymentSpec spec)
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

        if (spec.DeploymentId != _key.Deployment)
        {
            throw LensException.Validation("spec", $"the spec's deployment id is {spec.DeploymentId}, not this grain's {_key.Deployment}");
        }

        // The tenant of this grain's key, not the request, says which backends exist (architecture.md, "Tenancy").
        if (spec.Backend.Kind == BackendSpec.OpenAi && tenantBackends.Check(_key.Tenant, spec.Backend.Name) is { } backendError)
        {
            throw LensException.Validation("backend.name", backendError);
        }

        await EnsureLoadedAsync();
        var s = state.State;
        if (s.Spec is { } existing)
        {
            return existing.SameAs(spec)
                ? new CreateDeploymentResult(Info(), Created: false)
                : throw LensException.Conflict(
                    $"deployment name '{spec.Name}' on device '{_key.Device}' is taken by a different spec (id {_key.Deployment}); " +
                    "a changed configuration is a new deployment: give it a new name");
        }

        // The device records the name first (and refuses one taken by another id, or a device past its limits) before anything is
        // stored here; a create stopped in between leaves only the name, which the same create again completes.
        await Device.AddDeploymentAsync(spec.Name, _key.Deployment);
        s.Spec = spec;
        s.CreatedAt = time.GetUtcNow();
        await state.WriteStateAsync();
        await RegisterScheduleAsync();
        return new CreateDeploymentResult(Info(), Created: true);
    }

    public async Task<DeploymentInfo> GetAsync()
    {
        await SpecAsync();
        return Info();
    }

    public async Task<IntakeResult> ImportMeasurementsAsync(MeasurementBatch batch)
    {
        var spec = await SpecAsync();
        var (batchId, groups) = Prepare(spec, batch, MeasurementSource.Import);
        int added = 0, duplicates = 0;
        var changed = false;
        foreach (var (bucket, records) in groups)
        {
            var result = await BucketGrain(bucket).AddMeasurementsAsync(spec.Context, records);
            added += result.Added;
            duplicates += result.Duplicates;
            changed |= result.FitChanged;
            if (result.FitChanged)
            {
                ForgetEstimate(bucket);
            }
        }

        if (changed)
        {
            state.State.ModelVersion++;
            try
            {
                await state.WriteStateAsync();
            }
            finally
            {
                await _models.ChangedAsync(state.State.ModelVersion); // the fits changed in the buckets whatever happened here
            }
        }

        return new IntakeResult(batchId, added, duplicates, [.. groups.Select(g => g.Bucket.ToString())], state.State.ModelVersion);
    }

    public async Task<IntakeResult> ReportTelemetryAsync(MeasurementBatch batch)
    {
        var spec = await SpecAsync();
        var (batchId, groups) = Prepare(spec, batch, MeasurementSource.Telemetry);
        var added = 0;
        foreach (var (bucket, records) in groups)
        {
            added += await BucketGrain(bucket).AddTelemetryAsync(records);
        }

        // The monitor calls bucket grains only, never this grain: no call cycle while this turn waits for it.
        var verdict = await Monitor.ObserveAsync(spec.Context, [.. groups.SelectMany(g => g.Records)]);
        var reprofiling = await ReprofileDriftingAsync(spec, verdict);
        return new IntakeResult(batchId, added, batch.Measurements.Length - added, [.. groups.Select(g => g.Bucket.ToString())],
            state.State.ModelVersion, verdict.Drifting, reprofiling);
    }

    public async Task<DeploymentHealth> GetHealthAsync()
    {
        await SpecAsync();
        var status = await Monitor.GetStatusAsync();
        var snapshots = await GetBucketsAsync();
        return new DeploymentHealth(_key.Deployment, state.State.ModelVersion, status.WindowObservations, status.Analyses, status.CommonShift,
            status.AnalyzedAt, _options.DriftConsecutive, _options.AutoReprofile, Progress(),
            [.. snapshots.Select(b => new BucketHealthView(b.Bucket, b.Drift?.Observations ?? 0, b.Drift?.MeanApe, b.Drift?.Shift, b.Drift?.Band,
                b.Drift?.Drifting ?? false, b.Drift?.ConsecutiveDrift ?? 0, b.Stale, b.LastProfiled, b.Version))]);
    }

    public async Task<DeploymentHealthHistory> GetHealthHistoryAsync(int? last)
    {
        if (last is < 0 or > DeploymentHealthHistory.MaxLast)
        {
            throw LensException.Validation("last", $"last must be in 0..{DeploymentHealthHistory.MaxLast}; got {last}");
        }

        var buckets = (await SpecAsync()).ToBucketSet().AllBuckets().Select(b => b.ToString()).ToArray();
        var entries = await Monitor.GetHealthHistoryAsync(last);
        return new DeploymentHealthHistory(_key.Deployment, HealthHistory.Capacity(_options.HealthHistoryLength, buckets.Length),
            _options.DriftConsecutive, buckets, entries);
    }

    public async Task<ModelSubscription> SubscribeModelAsync(IModelObserver observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        var spec = await SpecAsync();
        _models.Subscribe(observer);
        return new ModelSubscription(new ModelStamp(spec.Context, state.State.ModelVersion, Estimates()),
            GrainContext.Address.SiloAddress ?? throw new InvalidOperationException("an activation without a silo"), _models.Activation);
    }

    public async Task<BucketSnapshot[]> GetBucketsAsync()
    {
        var spec = await SpecAsync();
        return await Task.WhenAll(spec.ToBucketSet().AllBuckets().Select(b => BucketGrain(b).GetSnapshotAsync()));
    }

    public async Task AdoptLegacyAsync()
    {
        await EnsureLoadedAsync();
        if (state.State.Spec is not null)
        {
            await Device.LegacyMovedAsync(_key.Deployment);
        }
    }

    /// <summary>
    /// Loads what the old device row held of this deployment, once per activation, when this grain holds nothing yet: deployments
    /// stored before each had a grain of its own answer as before. Shared by interleaved calls, so at most one write runs.
    /// </summary>
    private Task EnsureLoadedAsync()
    {
        if (state.State.Spec is not null)
        {
            return Task.CompletedTask;
        }

        if (_adopted is { IsFaulted: true } or { IsCanceled: true })
        {
            _adopted = null; // the device was unreachable: try again
        }

        return _adopted ??= AdoptCoreAsync();
    }

    private async Task AdoptCoreAsync()
    {
        if (await Device.TakeLegacyAsync(_key.Deployment) is not { } legacy || state.State.Spec is not null)
        {
            return;
        }

        state.State = new DeploymentState
        {
            Spec = legacy.Entry.Spec,
            CreatedAt = legacy.Entry.CreatedAt,
            ModelVersion = legacy.Entry.ModelVersion,
            Run = legacy.Run,
        };
        await state.WriteStateAsync();
        await RegisterScheduleAsync();
        await Device.LegacyMovedAsync(_key.Deployment);
        DeviceGrain.Adopted(logger, _key.Format());
    }

    private async Task<DeploymentSpec> SpecAsync()
    {
        await EnsureLoadedAsync();
        return state.State.Spec ?? throw LensException.NotFound($"deployment '{_key.Deployment}' does not exist on device '{_key.Device}'");
    }

    private (string BatchId, List<(BucketId Bucket, MeasurementRecord[] Records)> Groups) Prepare(DeploymentSpec spec, MeasurementBatch batch,
        MeasurementSource source)
    {
        var placed = Placement.Place(spec.ToBucketSet(), spec.ToPolicy(), batch, _options.MaxRowsPerImport);
        var batchId = batch.Id ?? Guid.NewGuid().ToString("N");
        var now = time.GetUtcNow();
        var records = batch.Measurements.Select((m, i) => new MeasurementRecord($"{batchId}:{i}", placed[i].ToString(), m.InputLength,
            m.OutputLength, m.E2eMs, m.TtftMs, source, now, m.Batch, Placement.ScopedGroup(batchId, m.Group))).ToArray();
        var groups = records.GroupBy(r => r.Bucket).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => (BucketId.Parse(g.Key), g.ToArray())).ToList();
        return (batchId, groups);
    }

    private IDeviceSchedule Device => GrainFactory.GetGrain<IDeviceSchedule>(_key.DeviceKey.Format());

    private IDeploymentMonitorGrain Monitor => GrainFactory.GetGrain<IDeploymentMonitorGrain>(_key.Format());

    private IBucketGrain BucketGrain(BucketId bucket) => GrainFactory.GetGrain<IBucketGrain>(_key.Bucket(bucket).Format());

    private DeploymentInfo Info()
    {
        var s = state.State;
        return new(_key.Deployment, _key.Device, s.Spec!, s.CreatedAt, s.ModelVersion, [.. s.Spec!.ToBucketSet().AllBuckets().Select(b => b.ToString())]);
    }
}
