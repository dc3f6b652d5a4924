using Lens.Abstractions;
using Lens.Core;
using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>The stored state of one bucket. Lists are bounded (<see cref="LensGrainOptions"/>).</summary>
[GenerateSerializer, Alias("lens.BucketState.v1")]
public sealed class BucketState
{
    /// <summary>The deployment's bucket sets and statistic, as the last write gave them.</summary>
    [Id(0)]
    public BucketContext? Context { get; set; }

    /// <summary>What the fit uses: profile and import measurements, oldest first.</summary>
    [Id(1)]
    public List<MeasurementRecord> Measurements { get; set; } = [];

    /// <summary>Measurements of the profiling run <see cref="PendingRunId"/>, stored as they finish and used once the run commits.</summary>
    [Id(2)]
    public List<MeasurementRecord> Pending { get; set; } = [];

    [Id(3)]
    public string? PendingRunId { get; set; }

    [Id(4)]
    public List<MeasurementRecord> Telemetry { get; set; } = [];

    /// <summary>Grows by one on every change of the fitted data.</summary>
    [Id(5)]
    public long Version { get; set; }

    [Id(6)]
    public bool Stale { get; set; }

    [Id(7)]
    public DateTimeOffset? LastProfiled { get; set; }

    /// <summary>Ids of recent committed runs and replacements, so that a retried commit does nothing (bounded).</summary>
    [Id(8)]
    public List<string> CommittedIds { get; set; } = [];

    /// <summary>The latest drift analysis of this bucket (windowed residual statistics); cleared whenever the fitted data change.</summary>
    [Id(9)]
    public BucketDrift? Drift { get; set; }
}

/// <summary>
/// One bucket (key <see cref="BucketKey"/>): validate, call <see cref="BucketFitter.FitBucket"/>, write state once, return an
/// immutable snapshot (style.md, "A grain at its best").
/// </summary>
[GrainType("bucket")]
public sealed class BucketGrain(
    [PersistentState("bucket", LensGrainOptions.StorageName)] IPersistentState<BucketState> state,
    IOptions<LensGrainOptions> options,
    TimeProvider time) : Grain, IBucketGrain
{
    private const int MaxCommittedIds = 64;

    /// <summary>The note of a bucket whose deployment runs a policy other than prefill-first padded.</summary>
    internal const string JointFitNote = "fitted with every cell under the deployment's scheduling policy: see its model";

    private readonly LensGrainOptions _options = options.Value;
    private BucketKey _key = null!;
    private BucketSnapshot _snapshot = null!;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _key = BucketKey.Parse(this.GetPrimaryKeyString());
        _snapshot = Refit();
        return Task.CompletedTask;
    }

    public Task<BucketSnapshot> GetSnapshotAsync() => Task.FromResult(_snapshot);

    public Task<MeasurementRecord[]> GetMeasurementsAsync() => Task.FromResult(state.State.Measurements.ToArray());

    public Task<MeasurementRecord[]> GetTelemetryAsync() => Task.FromResult(state.State.Telemetry.ToArray());

    public async Task<BucketWriteResult> AddMeasurementsAsync(BucketContext context, MeasurementRecord[] records)
    {
        Validate(context, records);
        var s = state.State;
        var seen = s.Measurements.Select(m => m.Id).ToHashSet(StringComparer.Ordinal);
        var fresh = records.Where(r => seen.Add(r.Id)).ToArray();
        if (fresh.Length == 0 && context.SameAs(s.Context))
        {
            return new BucketWriteResult(_snapshot, 0, records.Length, false);
        }

        s.Context = context;
        s.Measurements.AddRange(fresh);
        Trim(s.Measurements, _options.MaxMeasurementsPerBucket);
        if (fresh.Length > 0)
        {
            s.Version++;
            s.Drift = null; // judged against the old fit
        }

        await state.WriteStateAsync();
        _snapshot = Refit();
        return new BucketWriteResult(_snapshot, fresh.Length, records.Length - fresh.Length, fresh.Length > 0);
    }

    public Task<BucketWriteResult> RecordProfileAsync(BucketContext context, string runId, MeasurementRecord record, bool commit) =>
        RecordProfileRowsAsync(context, runId, [record], commit);

    public async Task<BucketWriteResult> RecordProfileRowsAsync(BucketContext context, string runId, MeasurementRecord[] records, bool commit)
    {
        ArgumentNullException.ThrowIfNull(records);
        Validate(context, records);
        ArgumentException.ThrowIfNullOrEmpty(runId);
        var s = state.State;
        if (s.CommittedIds.Contains(runId))
        {
            return new BucketWriteResult(_snapshot, 0, 1, false); // the run already committed here: a retried last row
        }

        if (s.PendingRunId != runId)
        {
            s.Pending.Clear(); // a run that never committed (failed or superseded) leaves nothing behind
            s.PendingRunId = runId;
        }

        var pending = s.Pending.Select(m => m.Id).ToHashSet(StringComparer.Ordinal);
        var fresh = records.Where(r => pending.Add(r.Id)).ToArray();
        var duplicate = fresh.Length == 0;
        s.Pending.AddRange(fresh);

        s.Context = context;
        if (commit)
        {
            // A profile replaces what the fit used: mixing it with older data would mix two states of the device.
            s.Measurements = [.. s.Pending];
            Trim(s.Measurements, _options.MaxMeasurementsPerBucket);
            s.Pending.Clear();
            s.PendingRunId = null;
            Remember(s, runId);
            s.Version++;
            s.Stale = false;
            s.Drift = null; // a fresh profile starts a fresh drift count
            s.LastProfiled = time.GetUtcNow();
        }
        else if (duplicate)
        {
            return new BucketWriteResult(_snapshot, 0, 1, false);
        }

        await state.WriteStateAsync();
        _snapshot = Refit();
        return new BucketWriteResult(_snapshot, fresh.Length, records.Length - fresh.Length, commit);
    }

    public async Task<BucketSnapshot> ReplaceMeasurementsAsync(BucketContext context, string replaceId, MeasurementRecord[] records)
    {
        Validate(context, records);
        ArgumentException.ThrowIfNullOrEmpty(replaceId);
        var s = state.State;
        if (s.CommittedIds.Contains(replaceId))
        {
            return _snapshot;
        }

        s.Context = context;
        s.Measurements = [.. records.DistinctBy(r => r.Id)];
        Trim(s.Measurements, _options.MaxMeasurementsPerBucket);
        Remember(s, replaceId);
        s.Version++;
        s.Stale = false;
        s.Drift = null;
        s.LastProfiled = time.GetUtcNow();
        await state.WriteStateAsync();
        return _snapshot = Refit();
    }

    public async Task<int> AddTelemetryAsync(MeasurementRecord[] records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var s = state.State;
        var seen = s.Telemetry.Select(m => m.Id).ToHashSet(StringComparer.Ordinal);
        var fresh = records.Where(r => seen.Add(r.Id)).ToArray();
        if (fresh.Length == 0)
        {
            return 0;
        }

        s.Telemetry.AddRange(fresh);
        Trim(s.Telemetry, _options.MaxTelemetryPerBucket);
        await state.WriteStateAsync();
        _snapshot = _snapshot with { TelemetryCount = s.Telemetry.Count };
        return fresh.Length;
    }

    public async Task<BucketSnapshot> SetStaleAsync(bool stale)
    {
        if (state.State.Stale == stale)
        {
            return _snapshot;
        }

        state.State.Stale = stale;
        await state.WriteStateAsync();
        return _snapshot = _snapshot with { Stale = stale };
    }

    public async Task<BucketSnapshot> RecordDriftAsync(BucketDrift drift)
    {
        ArgumentNullException.ThrowIfNull(drift);
        var s = state.State;
        if (drift.ModelVersion != s.Version || drift == s.Drift)
        {
            return _snapshot; // the analysis judged a fit this bucket no longer has, or says nothing new
        }

        s.Drift = drift;
        await state.WriteStateAsync();
        return _snapshot = _snapshot with { Drift = drift };
    }

    private void Validate(BucketContext context, IEnumerable<MeasurementRecord> records)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(records);
        var buckets = context.ToBucketSet();
        if (!buckets.Contains(_key.Bucket))
        {
            throw LensException.Validation("bucket", $"bucket {_key.Bucket} is not in the deployment's bucket set {buckets}");
        }

        foreach (var r in records)
        {
            if (r.Bucket != _key.Bucket.ToString())
            {
                throw LensException.Validation("bucket", $"measurement {r.Id} belongs to {r.Bucket}, not to {_key.Bucket}");
            }
        }
    }

    private static void Trim(List<MeasurementRecord> list, int max)
    {
        if (list.Count > max)
        {
            list.RemoveRange(0, list.Count - max);
        }
    }

    private static void Remember(BucketState s, string id)
    {
        s.CommittedIds.Add(id);
        if (s.CommittedIds.Count > MaxCommittedIds)
        {
            s.CommittedIds.RemoveAt(0);
        }
    }

    private BucketSnapshot Refit()
    {
        var s = state.State;
        if (s.Context is null)
        {
            // Never fitted here (e.g. a prefill bucket whose cost a decode bucket's pair measures), but telemetry and drift may be held.
            return BucketSnapshot.Empty(_key.Bucket) with { Stale = s.Stale, TelemetryCount = s.Telemetry.Count, Drift = s.Drift };
        }

        if (s.Context.Policy is { IsDefault: false })
        {
            // Under another scheduling policy the cells are fitted jointly over every bucket's measurements (DeploymentModels):
            // a bucket keeps its share of them and says how many it holds.
            return BucketSnapshot.Empty(_key.Bucket) with
            {
                Version = s.Version, MeasurementCount = s.Measurements.Count, Warning = JointFitNote, Stale = s.Stale, LastProfiled = s.LastProfiled,
                TelemetryCount = s.Telemetry.Count, PendingCount = s.Pending.Count, Drift = s.Drift,
            };
        }

        // Bounded CPU (at most MaxMeasurementsPerBucket points), so it stays on the grain turn.
        var fit = BucketFitter.FitBucket(s.Context.ToBucketSet(), _key.Bucket, [.. s.Measurements.Select(m => m.ToMeasurement())],
            s.Context.ToStatistic());
        return BucketSnapshot.From(fit, s.Version, s.Stale, s.LastProfiled, s.Telemetry.Count, s.Pending.Count) with { Drift = s.Drift };
    }
}
