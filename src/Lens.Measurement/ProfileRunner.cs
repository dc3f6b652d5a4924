using System.Diagnostics;
using Lens.Core;

namespace Lens.Measurement;

/// <summary>
/// Runs a profiling plan against one <see cref="IMeasurementBackend"/> (method.md, "Profiling"): warms every bucket up, then times
/// the plan's rows one request at a time in the plan's interleaved order. Each measurement is appended to the output CSV
/// (<see cref="LensCsv.MeasurementHeader"/>, bucket filled from the plan row) and flushed at once, in a single write, so the file never
/// holds a partial line of this run's. Resumable: rows already in the file are skipped, matched by bucket, input and output length and
/// counted by occurrence, so a plan with repeats resumes exactly where it stopped.
/// <para>
/// A plan with batch buckets (any row with <see cref="PlanRow.Batch"/> above 1; method.md, "Batched serving") runs each row as a
/// group of <c>b</c> identical requests released at once (<see cref="IMeasurementBackend.MeasureGroupAsync"/>) and writes one row per
/// request (<see cref="LensCsv.BatchedMeasurementHeader"/>), all of a group in one write. The group id is the row's index in the
/// plan expanded by the repeat multiplier (round * rows + index), so a re-run knows which groups are whole: a group the file holds in
/// part is removed from the file and measured again whole, and the fit never sees a partial group.
/// </para>
/// Each row goes through the <see cref="MeasurementLoop"/> the service's profile worker uses too (dispatch, checks, the retries of
/// <see cref="ProfileRunOptions.Retry"/>); resuming is in ProfileRunner.Resume.cs, warm-up in ProfileRunner.WarmUp.cs, the output file
/// in <see cref="MeasurementFile"/>.
/// </summary>
public sealed partial class ProfileRunner
{
    private readonly MeasurementLoop _loop;
    private readonly ProfileRunOptions _options;
    private int _running;

    /// <summary>Throws <see cref="ArgumentException"/> for options out of range, or a backend that retries while the run does.</summary>
    public ProfileRunner(IMeasurementBackend backend, ProfileRunOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        options ??= new ProfileRunOptions();
        options.Validate();
        _loop = new MeasurementLoop(backend, options.Retry, options.OnRetry);
        _options = options;
    }

    public Task<ProfileSummary> RunAsync(ProfilingPlan plan, string outputPath, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return RunAsync(plan.Rows, outputPath, cancellationToken);
    }

    /// <summary>
    /// Measures the rows of <paramref name="rows"/> (in order, times <see cref="ProfileRunOptions.RepeatMultiplier"/>) that
    /// <paramref name="outputPath"/> does not hold yet, appending each as it finishes. The file is created with its header if missing;
    /// an existing file must have exactly the measurement header. Throws <see cref="ProfileRunException"/> when stopped by failures,
    /// <see cref="OperationCanceledException"/> when cancelled; in both cases every finished measurement is in the file.
    /// </summary>
    public async Task<ProfileSummary> RunAsync(IReadOnlyList<PlanRow> rows, string outputPath, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputPath);
        if (Interlocked.Exchange(ref _running, 1) == 1)
        {
            throw new InvalidOperationException("this runner is already running a plan; a device takes one request at a time");
        }

        try
        {
            using var output = MeasurementFile.Open(outputPath, _options.FlushToDisk, IsGrouped(rows));
            return await RunAsync(rows, output, cancellationToken);
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    private async Task<ProfileSummary> RunAsync(IReadOnlyList<PlanRow> rows, MeasurementFile output, CancellationToken cancellationToken)
    {
        var total = rows.Count * _options.RepeatMultiplier;
        IReadOnlyList<(PlanRow Row, long? Group)> pending = output.Grouped
            ? [.. PendingGroups(rows, output.Existing, _options.RepeatMultiplier).Select(p => (p.Row, (long?)p.Group))]
            : [.. Pending(rows, output.Existing, _options.RepeatMultiplier).Select(r => (r, (long?)null))];
        var state = new RunState(total, total - pending.Count, output.DroppedPartialLine, output.DroppedPartialGroupRows);
        var clock = state.Clock;

        if (pending.Count > 0 && _options.WarmupsPerBucket > 0)
        {
            await WarmUpAsync([.. pending.Select(p => p.Row)], state, clock, cancellationToken);
        }

        var measuredDevice = TimeSpan.Zero;
        var processed = state.Skipped;
        foreach (var (row, group) in pending)
        {
            cancellationToken.ThrowIfCancellationRequested();
            TimeSpan? eta = state.Measured > 0 ? measuredDevice / state.Measured * (total - processed) : null;
            _options.Progress?.Report(new MeasurementProgress(ProfilePhase.Measure, processed, total, row, clock.Elapsed, eta));
            var (results, took) = await MeasureAsync(row, state, cancellationToken);
            processed++;
            if (results is null)
            {
                continue;
            }

            measuredDevice += took;
            output.Append([.. results.Select(r => new MeasuredRequest(row.InputLength, row.OutputLength, r.E2eMs, r.TtftMs, row.Bucket,
                group is null ? 1 : row.Batch, group))]);
            state.Measured++;
        }

        var summary = state.Summary();
        _options.Progress?.Report(new MeasurementProgress(ProfilePhase.Finished, processed, total, null, clock.Elapsed, TimeSpan.Zero));
        return summary;
    }

    /// <summary>
    /// One plan row through the <see cref="MeasurementLoop"/> (a request, or a group of <see cref="PlanRow.Batch"/> requests released at
    /// once, with the retries of <see cref="ProfileRunOptions.Retry"/>). A failure is recorded (and may stop the run), a success resets
    /// the run of failures. The time taken counts the retries and their waits.
    /// </summary>
    private async Task<(IReadOnlyList<TimedRequest>? Results, TimeSpan Took)> MeasureAsync(PlanRow row, RunState state,
        CancellationToken cancellationToken, bool warmUp = false)
    {
        var start = Stopwatch.GetTimestamp();
        var outcome = await _loop.MeasureAsync(row, cancellationToken);
        var took = Stopwatch.GetElapsedTime(start);
        state.DeviceTime += took;
        if (outcome.Results is { } results)
        {
            state.ConsecutiveFailures = 0;
            return (results, took);
        }

        var reason = outcome.Reason + outcome.AttemptsNote;
        state.Failures.Add(new ProfileFailure(row, reason, outcome.IsTransient, warmUp));
        state.ConsecutiveFailures++;
        if (_options.StopAfterConsecutiveFailures is { } limit && state.ConsecutiveFailures >= limit)
        {
            var summary = state.Summary();
            throw new ProfileRunException(
                $"profiling stopped after {state.ConsecutiveFailures} failed request{(state.ConsecutiveFailures == 1 ? "" : "s")} in a row " +
                $"against {_loop.Backend.Describe}; last, {(warmUp ? "warming up " : "")}{row.Bucket} I = {row.InputLength}, O = {row.OutputLength}: " +
                $"{reason}. {summary.Measured} measured now, {summary.Skipped} before, {summary.Remaining} left; re-run to resume.",
                summary,
                outcome.Fault);
        }

        return (null, took);
    }

    private sealed class RunState(int total, int skipped, bool droppedPartialLine, int droppedPartialGroupRows)
    {
        public int Skipped { get; } = skipped;

        public int Measured { get; set; }

        public int WarmUps { get; set; }

        public int ConsecutiveFailures { get; set; }

        public TimeSpan DeviceTime { get; set; }

        public List<ProfileFailure> Failures { get; } = [];

        public Stopwatch Clock { get; } = Stopwatch.StartNew();

        public ProfileSummary Summary() =>
            new(total, Measured, Skipped, Failures.ToArray(), WarmUps, DeviceTime, Clock.Elapsed, droppedPartialLine, droppedPartialGroupRows);
    }
}
