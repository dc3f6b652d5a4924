using Lens.Abstractions;
using Lens.Core;
using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>
/// Watches one deployment (key <see cref="DeploymentKey"/>) against observed latencies (method.md, "Beyond the paper", 3).
/// <para>
/// The window: the newest <see cref="LensGrainOptions.DriftWindow"/> observations of the deployment, held in memory (a new
/// activation starts an empty window; the per-bucket drift counts live durably in the bucket grains). When a bucket's fitted data
/// change (its version moves: a re-profile or an import), every observation in the window that touched it leaves the window, so
/// the re-profiled bucket is judged on fresh observations only.
/// </para>
/// <para>
/// The history: each analysis appends a compact entry (<see cref="HealthHistory.Sample"/>) to a ring of at most
/// <see cref="HealthHistory.Capacity"/> entries, persisted in a state of its own (so it survives restarts, unlike the window).
/// </para>
/// <para>
/// The rule: after each batch the window is analysed by <see cref="DriftAnalysis.Analyze"/> with <see cref="DriftOptions"/> of
/// <c>(DriftMinObservations, DriftZ, DriftMinRelativeShift)</c>: bucket <c>b</c> is flagged when at least <c>MinObservations</c>
/// observations touched it and <c>|shift_b - common| &gt; max(band_b, Z * se_b)</c>. Its consecutive count becomes
/// <c>count + 1</c> when flagged and 0 when not (an analysis in which it is not judged also resets it). A bucket whose count reaches
/// <c>K = DriftConsecutive</c> has sustained drift: the deployment grain marks it stale and re-profiles it alone; the re-profile's commit
/// clears its staleness and its count, and the window drops its old observations. A shift shared by every bucket (the common
/// shift) never triggers a re-profile: re-profiling one bucket cannot repair it; it is reported in the health instead.
/// </para>
/// </summary>
[GrainType("monitor")]
public sealed class DeploymentMonitorGrain(
    IOptions<LensGrainOptions> options,
    TimeProvider time,
    [PersistentState("healthHistory", LensGrainOptions.StorageName)] IPersistentState<HealthHistoryState> history) : Grain, IDeploymentMonitorGrain
{
    private readonly LensGrainOptions _options = options.Value;
    private readonly LinkedList<Entry> _window = new();
    private readonly HashSet<string> _ids = new(StringComparer.Ordinal);
    private readonly Dictionary<BucketId, long> _versions = [];
    private DeploymentKey _key = null!;
    private long _windowVersion;
    private long _analyses;
    private double _commonShift;
    private DateTimeOffset? _analyzedAt;
    private (BucketContext Context, long[] Versions, DeploymentModel Model)? _composed; // the model of the buckets' versions last seen

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _key = DeploymentKey.Parse(this.GetPrimaryKeyString());
        return Task.CompletedTask;
    }

    public async Task<MonitorVerdict> ObserveAsync(BucketContext context, MeasurementRecord[] records)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(records);
        using var activity = LensTelemetry.ActivitySource.StartActivity("lens.telemetry.analyze");
        var buckets = context.ToBucketSet();
        var all = buckets.AllBuckets().ToArray();
        var snapshots = await Task.WhenAll(all.Select(b => Bucket(b).GetSnapshotAsync()));
        var model = await ComposeAsync(context, all, snapshots);
        ForgetRefitted(model, all, snapshots);

        var deploymentTag = LensTelemetry.Deployment(_key.Tenant, _key.Device, _key.Deployment);
        foreach (var r in records)
        {
            if (!_ids.Add(r.Id))
            {
                continue; // a retried batch
            }

            var o = new Observation(r.InputLength, r.OutputLength, r.E2eMs, r.TtftMs);
            var touched = Touched(model, o, out var main, out var predicted);
            _window.AddLast(new Entry(r.Id, o, touched));
            LensTelemetry.Observations.Add(1, deploymentTag);
            if (main is { } bucket)
            {
                LensTelemetry.ObservedError.Record(Math.Abs(o.E2eMs - predicted) / o.E2eMs * 100, deploymentTag, LensTelemetry.Bucket(bucket.ToString()));
            }
        }

        while (_window.Count > _options.DriftWindow)
        {
            _ids.Remove(_window.First!.Value.Id);
            _window.RemoveFirst();
        }

        _windowVersion++;

        // Only observations whose every bucket is fitted can be compared with the model (the others wait in the window).
        var usable = _window.Where(e => e.Touched is not null).Select(e => e.Observation).ToArray();
        if (usable.Length == 0)
        {
            return new MonitorVerdict(false, [], []);
        }

        var driftOptions = new DriftOptions(_options.DriftMinObservations, _options.DriftZ, _options.DriftMinRelativeShift);
        var report = await Task.Run(() => DriftAnalysis.Analyze(model, usable, driftOptions)); // bounded, but off the grain turn
        _analyses++;
        _commonShift = report.CommonShift;
        _analyzedAt = time.GetUtcNow();

        var counts = new int[all.Length];
        var writes = new List<Task<BucketSnapshot>>();
        var drifting = new List<string>();
        var sustained = new List<(string Bucket, double Own)>();
        for (var i = 0; i < all.Length; i++)
        {
            var health = report.Buckets[i];
            var previous = snapshots[i].Drift;
            if (health.Observations == 0 && previous is null)
            {
                continue;
            }

            var count = health.Drifting ? (previous?.ConsecutiveDrift ?? 0) + 1 : 0;
            counts[i] = count;
            var name = all[i].ToString();
            if (health.Drifting)
            {
                drifting.Add(name);
                LensTelemetry.DriftEvents.Add(1, deploymentTag, LensTelemetry.Bucket(name));
                if (count >= _options.DriftConsecutive)
                {
                    sustained.Add((name, Math.Abs(health.Shift - report.CommonShift)));
                }
            }

            var drift = new BucketDrift(health.Observations, double.IsFinite(health.MeanApe) ? health.MeanApe : null, health.Shift,
                health.ShiftStandardError, health.Band, health.Drifting, count, _analyzedAt.Value, snapshots[i].Version);
            writes.Add(Bucket(all[i]).RecordDriftAsync(drift));
        }

        await Task.WhenAll(writes);
        await AppendHistoryAsync(HealthHistory.Sample(_analyzedAt.Value, report, counts, [.. snapshots.Select(b => b.Stale)]), all.Length);
        activity?.SetTag("lens.drifting", drifting.Count);
        return new MonitorVerdict(true, [.. drifting], [.. sustained.OrderByDescending(s => s.Own).Select(s => s.Bucket)]);
    }

    public Task<MonitorStatus> GetStatusAsync() => Task.FromResult(new MonitorStatus(_window.Count, _analyses, _commonShift, _analyzedAt));

    public Task<HealthHistoryEntry[]> GetHealthHistoryAsync(int? last) => Task.FromResult(HealthHistory.Newest(history.State.Entries, last));

    public Task AppendHistoryAsync(HealthHistoryEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var n = entry.Observations.Length;
        if (entry.MeanApe.Length != n || entry.Shift.Length != n || entry.Band.Length != n || entry.ConsecutiveDrift.Length != n ||
            entry.Stale.Length != n)
        {
            throw LensException.Validation("entry", "every array of a health history entry must hold one value per bucket");
        }

        return AppendEntryAsync(entry, n);
    }

    /// <summary>
    /// The deployment's model, composed again only when a bucket's data changed (its version moved) since the last batch: under a
    /// scheduling policy the composition is the joint fit of every measurement, too costly to repeat for each telemetry batch.
    /// </summary>
    private async Task<DeploymentModel> ComposeAsync(BucketContext context, BucketId[] all, BucketSnapshot[] snapshots)
    {
        var versions = snapshots.Select(s => s.Version).ToArray();
        if (_composed is { } last && last.Context.SameAs(context) && last.Versions.AsSpan().SequenceEqual(versions))
        {
            return last.Model;
        }

        var model = await DeploymentModels.ComposeAsync(GrainFactory, _key, context, all, snapshots);
        _composed = (context, versions, model);
        return model;
    }

    /// <summary>Appends one analysis to the stored ring (bounded by <see cref="HealthHistory.Capacity"/>) and writes it.</summary>
    private Task AppendHistoryAsync(HealthSample sample, int bucketCount) => AppendEntryAsync(HealthHistoryEntry.From(sample), bucketCount);

    private async Task AppendEntryAsync(HealthHistoryEntry entry, int bucketCount)
    {
        var capacity = HealthHistory.Capacity(_options.HealthHistoryLength, bucketCount);
        if (capacity == 0 && history.State.Entries.Count == 0)
        {
            return; // nothing kept: no write
        }

        history.State.Entries = [.. HealthHistory.Append(history.State.Entries, entry, capacity)];
        await history.WriteStateAsync();
    }

    public Task<ObservationWindow> GetWindowAsync() =>
        Task.FromResult(new ObservationWindow(_windowVersion,
            [.. _window.Select(e => new MeasurementInput(e.Observation.InputLength, e.Observation.OutputLength, e.Observation.E2eMs, e.Observation.TtftMs))]));

    /// <summary>Drops the observations that touched a bucket whose fitted data changed since the last batch (and re-places the rest).</summary>
    private void ForgetRefitted(DeploymentModel model, BucketId[] all, BucketSnapshot[] snapshots)
    {
        var refitted = new HashSet<BucketId>();
        for (var i = 0; i < all.Length; i++)
        {
            if (_versions.TryGetValue(all[i], out var seen) && seen != snapshots[i].Version)
            {
                refitted.Add(all[i]);
            }

            _versions[all[i]] = snapshots[i].Version;
        }

        var node = _window.First;
        while (node is not null)
        {
            var next = node.Next;
            var e = node.Value;
            if (e.Touched is { } touched && touched.Overlaps(refitted))
            {
                _ids.Remove(e.Id);
                _window.Remove(node);
                _windowVersion++;
            }
            else if (e.Touched is null)
            {
                node.Value = e with { Touched = Touched(model, e.Observation, out _, out _) }; // a bucket may have been fitted since
            }

            node = next;
        }
    }

    /// <summary>The buckets an observation touches, its main one (largest share of predicted time) and its predicted E2E; null when it touches an unfitted bucket.</summary>
    private static HashSet<BucketId>? Touched(DeploymentModel model, Observation o, out BucketId? main, out double predicted)
    {
        main = null;
        predicted = double.NaN;
        try
        {
            predicted = model.Predict(o.InputLength, o.OutputLength).E2eMs;
            if (double.IsNaN(predicted))
            {
                return null; // under a scheduling policy an unfitted cell gives no number rather than an exception
            }

            var shares = model.Breakdown(o.InputLength, o.OutputLength);
            var set = new HashSet<BucketId>();
            var best = double.NegativeInfinity;
            foreach (var share in shares)
            {
                set.Add(share.Bucket);
                if (share.Ms > best)
                {
                    best = share.Ms;
                    main = share.Bucket;
                }
            }

            return set;
        }
        catch (Exception ex) when (ex is UnfittedBucketException or RequestOutOfRangeException)
        {
            return null;
        }
    }

    private IBucketGrain Bucket(BucketId bucket) => GrainFactory.GetGrain<IBucketGrain>(_key.Bucket(bucket).Format());

    private sealed record Entry(string Id, Observation Observation, HashSet<BucketId>? Touched);
}

/// <summary>The stored health history of one deployment: its drift analyses, oldest first (a state of its own, so it never crowds the buckets').</summary>
[GenerateSerializer, Alias("lens.HealthHistoryState.v1")]
public sealed class HealthHistoryState
{
    [Id(0)]
    public List<HealthHistoryEntry> Entries { get; set; } = [];
}
