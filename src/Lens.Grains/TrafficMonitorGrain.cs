using Lens.Abstractions;
using Lens.Core;
using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>
/// Monitors one deployment (key <see cref="DeploymentKey"/>) against its live traffic under continuous batching (method.md, "Live
/// traffic"): the LLM requests its server's OpenTelemetry spans describe come in through OTLP, and each time a window's worth of new
/// requests arrived (<see cref="LensGrainOptions.TrafficWindow"/>), the newest window is replayed through the deployment's serving
/// simulation with its current model (the silo's <see cref="ModelCache"/>) by <see cref="TrafficAnalysis.Analyze"/>, on the silo's
/// <see cref="HeavyWorkScheduler"/> (the grain turn awaits it; later batches queue behind it). The per-cell streaks are folded by a
/// <see cref="TrafficMonitor"/> (against the profile while each cell's traffic baseline of <see cref="LensGrainOptions.TrafficBaselineWindows"/>
/// windows is learned, then against that baseline): a cell out of band over <see cref="LensGrainOptions.TrafficConsecutive"/> windows running is flagged and
/// its bucket grain (the decode bucket with its batch bucket, or the prefill bucket) marked stale; when the window estimated its cost
/// tightly, that cost is written into the deployment's model with its provenance (<see cref="IDeploymentGrain.ApplyTrafficEstimatesAsync"/>).
/// When the operator allows it (<see cref="LensGrainOptions.ReprofileFlaggedCells"/>), a flagged cell is also re-profiled alone, once
/// per flag (<see cref="IDeploymentGrain.ReprofileCellAsync"/>). Every window is appended to the deployment's health history (source
/// <c>traffic</c>, with the cell whose re-profile it started).
/// <para>
/// What is persisted: the window itself is held in memory only (10,000 requests is ~0.5 MB, past an Azure Table row); a new activation
/// starts an empty window. The state of record, <see cref="TrafficState"/>, holds the cells' tracks, the latest report (one row per cell the
/// window reached: a few hundred cells stay far below a row) and the counts; it is written once per analysis.
/// </para>
/// </summary>
[GrainType("traffic")]
public sealed class TrafficMonitorGrain(
    IOptions<LensGrainOptions> options,
    TimeProvider time,
    ModelCache models,
    HeavyWorkScheduler heavy,
    [PersistentState("traffic", LensGrainOptions.StorageName)] IPersistentState<TrafficState> state) : Grain, ITrafficMonitorGrain
{
    private readonly LensGrainOptions _options = options.Value;
    private readonly Queue<ObservedRequest> _window = new();
    private TrafficMonitor _monitor = null!;
    private HashSet<BucketId> _flagged = []; // flagged in the latest window: a cell newly flagged is marked stale
    private DeploymentKey _key = null!;
    private bool _exists;
    private int _pending;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _key = DeploymentKey.Parse(this.GetPrimaryKeyString());
        _monitor = new TrafficMonitor(_options.TrafficConsecutive, _options.TrafficBaselineWindows);
        var tracks = new List<KeyValuePair<BucketId, CellTrack>>();
        foreach (var (cell, track) in state.State.Tracks ?? [])
        {
            if (BucketId.TryParse(cell, out var id))
            {
                tracks.Add(new(id, track.ToCore()));
            }
        }

        _monitor.Restore(tracks, state.State.RecentCommonShifts);
        _flagged = [.. state.State.Latest?.Cells.Where(c => c.Flagged).Select(c => BucketId.TryParse(c.Cell, out var id) ? id : default)
            .Where(id => id != default) ?? []];
        return Task.CompletedTask;
    }

    public async Task<TrafficStatus> ObserveAsync(ObservedBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var n = batch.Count;
        if (batch.InputLengths.Length != n || batch.OutputLengths.Length != n || batch.TtftMs.Length != n || batch.E2eMs.Length != n ||
            batch.QueueMs.Length != n || (batch.Replicas is { } r && r.Length != n))
        {
            throw LensException.Validation("batch", "every column of an observed batch must hold one value per request");
        }

        if (!_exists)
        {
            await DeploymentGrains.Get(GrainFactory, _key).GetAsync(); // NotFound for a deployment the tenant lacks: nothing is kept
            _exists = true;
        }

        // Every request is checked before any is kept: a refused batch leaves the window as it was.
        var requests = new ObservedRequest[n];
        for (var i = 0; i < n; i++)
        {
            var queue = double.IsNaN(batch.QueueMs[i]) ? (double?)null : batch.QueueMs[i];
            var replica = batch.Replicas?[i];
            if (ObservedRequest.Problem(batch.ArrivalMs[i], batch.InputLengths[i], batch.OutputLengths[i], batch.TtftMs[i], batch.E2eMs[i], queue,
                    replica) is { } problem)
            {
                throw LensException.Validation($"batch[{i}]", problem);
            }

            requests[i] = new ObservedRequest(batch.ArrivalMs[i], batch.InputLengths[i], batch.OutputLengths[i], batch.TtftMs[i], batch.E2eMs[i],
                queue, replica);
        }

        foreach (var request in requests)
        {
            _window.Enqueue(request);
        }

        while (_window.Count > _options.TrafficWindow)
        {
            _window.Dequeue();
        }

        _pending += n;
        state.State.Received += n;
        if (_pending >= _options.TrafficWindow)
        {
            _pending = 0;
            await AnalyzeAsync();
        }

        return await StatusAsync();
    }

    public Task<TrafficStatus> GetStatusAsync() => StatusAsync();

    private async Task AnalyzeAsync()
    {
        using var activity = LensTelemetry.ActivitySource.StartActivity("lens.traffic.analyze");
        var s = state.State;
        var window = _window.OrderBy(r => r.ArrivalMs).ToArray();
        TrafficReport report;
        DeploymentModel model;
        long version;
        try
        {
            (model, version) = await models.GetAsync(_key);
            report = await heavy.RunAsync(() => TrafficAnalysis.Analyze(model, window));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // An analysis that cannot run (the model unfitted or absent, ...) is reported in the status; the requests stay taken.
            s.LastError = ex.Message;
            await state.WriteStateAsync();
            return;
        }

        var verdict = _monitor.Next(report);
        var analyzedAt = time.GetUtcNow();
        var deploymentTag = LensTelemetry.Deployment(_key.Tenant, _key.Device, _key.Deployment);
        LensTelemetry.TrafficAnalyses.Add(1, deploymentTag);
        var stale = new List<Task<BucketSnapshot>>();
        foreach (var cell in verdict.Flagged)
        {
            var name = cell.Health.Cell.ToString();
            LensTelemetry.TrafficFlagged.Add(1, deploymentTag, LensTelemetry.Bucket(name));
            if (!_flagged.Contains(cell.Health.Cell))
            {
                // Newly flagged: its bucket's profile no longer describes the device (a re-profile's commit clears it).
                stale.Add(GrainFactory.GetGrain<IBucketGrain>(_key.Bucket(cell.Health.Cell).Format()).SetStaleAsync(true));
            }
        }

        await Task.WhenAll(stale);
        _flagged = [.. verdict.Flagged.Select(c => c.Health.Cell)];

        // Acting on it: a flagged cell whose cost the window estimated tightly takes that cost in the deployment's model, with its
        // provenance; and every window is an entry of the deployment's health history.
        var estimates = verdict.Flagged.Where(c => c.Health.EstimatedMs is > 0)
            .Select(c => new TrafficEstimate(c.Health.Cell, c.Health.EstimatedMs!.Value, c.Health.ProfiledMs, c.Health.Steps, report.StartMs,
                report.EndMs, analyzedAt).ToRecord()).ToArray();
        if (estimates.Length > 0)
        {
            await Deployment.ApplyTrafficEstimatesAsync(estimates);
        }

        var reprofile = await ReprofileFlaggedAsync(verdict, analyzedAt);
        var entry = HealthHistoryEntry.From(HealthHistory.TrafficSample(analyzedAt, [.. model.Buckets.AllBuckets()], verdict)) with
        {
            Source = ModelProvenance.Traffic,
            Reprofiling = reprofile?.Cell,
        };
        await GrainFactory.GetGrain<IDeploymentMonitorGrain>(_key.Format()).AppendHistoryAsync(entry);
        s.Analyses++;
        s.LastError = null;
        s.RecentCommonShifts = [.. _monitor.RecentCommonShifts];
        s.Tracks = _monitor.Tracks.ToDictionary(p => p.Key.ToString(), p => TrafficTrackState.From(p.Value), StringComparer.Ordinal);
        s.Latest = new TrafficWindow(analyzedAt, version, report.Requests, report.Skipped, Finite(report.TtftMape), Finite(report.E2eMape),
            report.CommonShift, report.StartMs, report.EndMs,
            [.. verdict.Cells.Select(c => new TrafficCell(c.Health.Cell.ToString(), c.Health.Observations, c.Health.Steps, c.Health.Shift,
                c.Health.ShiftStandardError, c.Band, c.OutOfBand, c.ConsecutiveOutOfBand, c.Flagged, c.Health.ProfiledMs,
                c.Health.EstimatedMs, c.Reference.ToString().ToLowerInvariant(), c.BaselineWindows, c.Baseline, c.Deviation,
                c.DeviationStandardError))], verdict.Disturbed, verdict.RecentCommonShift);
        await state.WriteStateAsync();
        activity?.SetTag("lens.flagged", stale.Count);
    }

    /// <summary>
    /// When the operator allows it (<see cref="LensGrainOptions.ReprofileFlaggedCells"/>), the first flagged cell whose current flag
    /// has had no re-profile yet is re-profiled alone through the deployment grain (<see cref="IDeploymentGrain.ReprofileCellAsync"/>);
    /// while a run of the deployment is unfinished none starts, and a later window that still flags the cell asks again. A cell no
    /// longer flagged is forgotten, so a later flag may start another run. Returns the re-profile this window started, or null.
    /// </summary>
    private async Task<TrafficReprofile?> ReprofileFlaggedAsync(TrafficWindowVerdict verdict, DateTimeOffset at)
    {
        var s = state.State;
        var flagged = verdict.Flagged.Select(c => c.Health.Cell.ToString()).ToArray();
        s.Reprofiled = s.Reprofiled?.Intersect(flagged, StringComparer.Ordinal).ToList() is { Count: > 0 } still ? still : null;
        if (!_options.ReprofileFlaggedCells)
        {
            return null;
        }

        foreach (var cell in flagged.Where(c => s.Reprofiled?.Contains(c, StringComparer.Ordinal) != true))
        {
            if (await Deployment.ReprofileCellAsync(cell) is { RunId: { } runId, Bucket: { } bucket })
            {
                (s.Reprofiled ??= []).Add(cell);
                return s.LastReprofile = new TrafficReprofile(cell, bucket, runId, at);
            }
        }

        return null;
    }

    private async Task<TrafficStatus> StatusAsync()
    {
        var s = state.State;
        var estimates = s.Analyses > 0 ? await Deployment.GetTrafficEstimatesAsync() : [];
        return new TrafficStatus(_key.Deployment, s.Received, _options.TrafficWindow, _pending, s.Analyses, _monitor.ConsecutiveWindows,
            [.. s.Latest?.Cells.Where(c => c.Flagged).Select(c => c.Cell) ?? []], s.Latest, s.LastError, estimates.Length > 0 ? estimates : null,
            s.LastReprofile, _monitor.BaselineWindows);
    }

    private IDeploymentGrain Deployment => DeploymentGrains.Get(GrainFactory, _key);

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;
}

/// <summary>The stored part of a deployment's live-traffic monitoring: counts, each cell's track, the recent common shifts and the latest window's report.</summary>
[GenerateSerializer, Alias("lens.TrafficState.v1")]
public sealed class TrafficState
{
    [Id(0)]
    public long Received { get; set; }

    [Id(1)]
    public long Analyses { get; set; }

    /// <summary>Windows out of band running per cell, as stored before the tracks (read by nothing: a streak starts again).</summary>
    [Id(2)]
    public Dictionary<string, int>? Streaks { get; set; }

    [Id(3)]
    public TrafficWindow? Latest { get; set; }

    [Id(4)]
    public string? LastError { get; set; }

    /// <summary>
    /// The cells flagged now whose flag has had its single-cell re-profile (one run per cell and flag; null: none). At most the
    /// flagged cells; a cell leaves it when it is no longer flagged.
    /// </summary>
    [Id(5)]
    public List<string>? Reprofiled { get; set; }

    /// <summary>The latest single-cell re-profile started for a flagged cell (null: none yet).</summary>
    [Id(6)]
    public TrafficReprofile? LastReprofile { get; set; }

    /// <summary>Each cell's track (Core's <see cref="CellTrack"/>): its baseline windows and the windows running against it.</summary>
    [Id(7)]
    public Dictionary<string, TrafficTrackState>? Tracks { get; set; }

    /// <summary>The latest windows' common shifts, oldest first (a window far from them is the machine disturbed).</summary>
    [Id(8)]
    public double[]? RecentCommonShifts { get; set; }
}

/// <summary>
/// A cell's track as stored: values rounded to 1e-6 (shifts are relative; the row stays small with a few hundred cells of up to
/// <see cref="LensGrainOptions.TrafficBaselineWindows"/> + 8 windows each).
/// </summary>
[GenerateSerializer, Alias("lens.TrafficTrackState.v1")]
public sealed class TrafficTrackState
{
    [Id(0)]
    public double ProfiledMs { get; set; }

    [Id(1)]
    public int Streak { get; set; }

    /// <summary>Own shift and its standard deviation of each baseline window, in pairs.</summary>
    [Id(2)]
    public double[] Learned { get; set; } = [];

    /// <summary>Deviation and its standard deviation of each window running, in pairs.</summary>
    [Id(3)]
    public double[] Run { get; set; } = [];

    public static TrafficTrackState From(CellTrack track) => new()
    {
        ProfiledMs = track.ProfiledMs, Streak = track.Streak, Learned = Pairs(track.Learned), Run = Pairs(track.Run),
    };

    public CellTrack ToCore() => new(ProfiledMs, Streak, Points(Learned), Points(Run));

    private static double[] Pairs(TrackPoint[] points) =>
        [.. points.SelectMany(p => new[] { Math.Round(p.Value, 6), Math.Round(p.Sigma, 6) })];

    private static TrackPoint[] Points(double[] pairs) =>
        [.. Enumerable.Range(0, pairs.Length / 2).Select(i => new TrackPoint(pairs[2 * i], pairs[(2 * i) + 1]))];
}
