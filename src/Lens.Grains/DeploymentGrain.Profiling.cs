using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// The deployment's profiling: its latest run (the plan of <see cref="ProfilingPlanner.Create"/>, or of <see cref="PolicyPlanner.Create"/>
/// under another scheduling policy; all rows or one bucket's) with the
/// durable index of the next row. A run is queued on the device grain, whose worker measures one row at a time across the device and
/// hands each back here (<see cref="IDeviceProfileSteps"/>): the row is stored in its bucket grain, then the index here, before the
/// next row starts. Also re-profiling on a schedule (this grain's reminder) and when drift is sustained.
/// </summary>
public sealed partial class DeploymentGrain
{
    private const string ReprofileReminder = "lens-reprofile";

    private readonly Dictionary<string, PlanRow[]> _runRows = [];
    private Guid _workerId;

    public async Task<ProfileProgress> StartProfileAsync(ProfileRequest request)
    {
        var spec = await SpecAsync();
        string? bucket = null;
        if (request?.Bucket is { } text)
        {
            var buckets = spec.ToBucketSet();
            if (!BucketId.TryParse(text, out var id) || !buckets.Contains(id))
            {
                throw LensException.Validation("bucket", $"bucket '{text}' is not in the deployment's bucket set {buckets}");
            }

            bucket = id.ToString();
        }

        return await StartRunAsync(spec, bucket);
    }

    public async Task<ProfileProgress> GetProfileProgressAsync()
    {
        await SpecAsync();
        return Progress();
    }

    public async Task<ProfileStep?> NextStepAsync(Guid workerId)
    {
        _workerId = workerId; // the device's current worker claims the run (the device hands its queue to one worker at a time)
        await EnsureLoadedAsync();
        return await NextStepCoreAsync();
    }

    public async Task<ProfileStep?> CompleteStepAsync(Guid workerId, StepOutcome outcome)
    {
        if (_workerId != Guid.Empty && workerId != _workerId)
        {
            return null; // a worker that has since been replaced
        }

        _workerId = workerId;
        await EnsureLoadedAsync();
        if (state.State is not { Spec: { } spec, Run: { } run } || run.ToProgress().IsFinished)
        {
            return null;
        }

        if (outcome.RunId != run.RunId || outcome.Index != run.NextIndex)
        {
            return await NextStepCoreAsync(); // a stale or repeated completion: the durable index decides
        }

        var changed = false;
        run.Retries += outcome.Retries;
        if (outcome.Retries > 0)
        {
            LensTelemetry.MeasurementFailures.Add(outcome.Retries, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, "transient"));
        }

        if (outcome.Error is { } error)
        {
            LensTelemetry.MeasurementFailures.Add(1, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, "fatal"));
            Finish(run, ProfileState.Failed, error);
        }
        else
        {
            var rows = RowsOf(run, spec);
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
            var result = await BucketGrain(row.Bucket).RecordProfileRowsAsync(spec.Context, run.RunId, records, commit);
            if (result.FitChanged)
            {
                state.State.ModelVersion++;
                ForgetEstimate(row.Bucket);
                changed = true;
            }

            if (commit)
            {
                await SettleCellAsync(run, row.Bucket);
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
            if (changed)
            {
                await _models.ChangedAsync(state.State.ModelVersion);
            }
        }

        return await NextStepCoreAsync();
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != ReprofileReminder)
        {
            return;
        }

        // A scheduled re-profile of every bucket; skipped while a run is unfinished (ticks may repeat).
        await EnsureLoadedAsync();
        if (state.State.Spec is not { ReprofileEveryMinutes: not null } spec)
        {
            if (await this.GetReminder(reminderName) is { } stale)
            {
                await this.UnregisterReminder(stale);
            }

            return;
        }

        if (!IsRunning)
        {
            await StartRunAsync(spec, bucket: null);
        }
    }

    private async Task RegisterScheduleAsync()
    {
        if (state.State.Spec?.ReprofileEveryMinutes is { } minutes)
        {
            var period = TimeSpan.FromMinutes(minutes);
            await this.RegisterOrUpdateReminder(ReprofileReminder, period, period);
        }
    }

    private bool IsRunning => state.State.Run is { } run && !run.ToProgress().IsFinished;

    private ProfileProgress Progress() => state.State.Run?.ToProgress() ?? ProfileProgress.None(_key.Deployment);

    private async Task<ProfileProgress> StartRunAsync(DeploymentSpec spec, string? bucket, string? cell = null)
    {
        var s = state.State;
        if (s.Run is { } current && IsRunning)
        {
            if (current.Bucket == bucket)
            {
                await Device.EnqueueProfileAsync(_key.Deployment); // asked again while queued or running: the same run (queued, surely)
                return current.ToProgress();
            }

            throw LensException.Conflict(
                $"a profile of {_key.Deployment} ({current.Bucket ?? "all buckets"}) is {current.State.ToString().ToLowerInvariant()}; " +
                "wait for it to finish");
        }

        var run = new ProfileRun
        {
            RunId = Guid.NewGuid().ToString("N"), DeploymentId = _key.Deployment, Bucket = bucket, Cell = cell, State = ProfileState.Queued,
        };
        var rows = RowsOf(run, spec);
        if (rows.Length == 0)
        {
            _runRows.Remove(run.RunId);
            throw LensException.Validation("bucket",
                $"bucket {bucket} has no profiling rows of its own (its prefill cost comes from a decode bucket's pair); re-profile that decode bucket");
        }

        run.Total = rows.Length;
        s.Run = run;
        await state.WriteStateAsync();
        GrainLog.RunQueued(logger, run.RunId, _key.Deployment, _key.DeviceKey.Format(), run.Total, bucket ?? "all buckets");

        // Stored first: were the device unreachable now, asking again queues the same run.
        await Device.EnqueueProfileAsync(_key.Deployment);
        return run.ToProgress();
    }

    /// <summary>
    /// Sustained drift (see <see cref="DeploymentMonitorGrain"/>): marks the most shifted such bucket stale and re-profiles it alone,
    /// through the existing single-bucket run (<see cref="StartRunAsync"/>), unless auto re-profiling is off or a run is unfinished
    /// (the bucket's count stays at or above K, so the next batch after that run asks again). A prefill bucket with no plan rows of
    /// its own is re-profiled through the decode bucket whose pair measures its cost. Returns the bucket whose run was started, or null.
    /// </summary>
    private async Task<string?> ReprofileDriftingAsync(DeploymentSpec spec, MonitorVerdict verdict)
    {
        if (!_options.AutoReprofile || verdict.Sustained.Length == 0 || spec.IsBatched || spec.HasPolicy || IsRunning)
        {
            return null;
        }

        var drifting = BucketId.Parse(verdict.Sustained[0]);
        if (spec.CreatePlan().ReprofileTarget(drifting) is not { } bucket)
        {
            return null;
        }

        await BucketGrain(bucket).SetStaleAsync(true); // the run's commit clears it
        GrainLog.DriftReprofile(logger, _key.Deployment, _key.DeviceKey.Format(), drifting.ToString(), bucket.ToString());
        LensTelemetry.Reprofiles.Add(1, LensTelemetry.Deployment(_key.Tenant, _key.Device, _key.Deployment), LensTelemetry.Bucket(drifting.ToString()),
            LensTelemetry.Source(LensTelemetry.DriftSource));
        await StartRunAsync(spec, bucket.ToString());
        return bucket.ToString();
    }

    private async Task<ProfileStep?> NextStepCoreAsync()
    {
        if (state.State is not { Spec: { } spec, Run: { } run } || run.ToProgress().IsFinished)
        {
            return null; // nothing to run: the device's worker moves on to the next deployment
        }

        if (run.State == ProfileState.Queued)
        {
            run.State = ProfileState.Running;
            run.StartedAt = time.GetUtcNow();
            await state.WriteStateAsync();
        }

        var row = RowsOf(run, spec)[run.NextIndex];
        return new ProfileStep(run.RunId, run.DeploymentId, run.NextIndex, row.Bucket.ToString(), row.InputLength, row.OutputLength,
            spec.Backend, row.Batch);
    }

    private void Finish(ProfileRun run, ProfileState final, string? error)
    {
        run.State = final;
        run.LastError = error;
        run.FinishedAt = time.GetUtcNow();
        _runRows.Remove(run.RunId);
        GrainLog.RunFinished(logger, run.RunId, run.DeploymentId, _key.DeviceKey.Format(), final.ToString(), run.NextIndex, run.Total);
    }

    private PlanRow[] RowsOf(ProfileRun run, DeploymentSpec spec)
    {
        if (!_runRows.TryGetValue(run.RunId, out var rows))
        {
            var plan = spec.PlanRows(); // deterministic: the same spec always gives the same rows, so an index survives restarts
            var bucket = run.Bucket is null ? (BucketId?)null : BucketId.Parse(run.Bucket);
            rows = [.. plan.Where(r => bucket is null || r.Bucket == bucket)];
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
}
