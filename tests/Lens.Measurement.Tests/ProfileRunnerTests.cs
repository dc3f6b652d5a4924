using Lens.Core;

namespace Lens.Measurement.Tests;


/// <summary>A backend whose every answer the test decides; it records what it was asked.</summary>
internal sealed class ScriptedBackend(Func<int, int, int, CancellationToken, TimedRequest>? answer = null) : IMeasurementBackend
{
    private readonly List<(int Input, int Output)> _requests = [];

    public string Describe => "scripted test backend";

    public IReadOnlyList<(int Input, int Output)> Requests => _requests;

    /// <summary>A plausible answer: 1 ms per prompt token, 2 ms per output token.</summary>
    public static TimedRequest Plausible(int i, int o) => new(i, o, i + (2.0 * o), i + 2.0);

    public Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _requests.Add((inputLength, outputLength));
        var result = answer is null
            ? Plausible(inputLength, outputLength)
            : answer(_requests.Count, inputLength, outputLength, cancellationToken);
        return Task.FromResult(result);
    }
}

/// <summary>Collects progress reports synchronously (Progress&lt;T&gt; would post them later).</summary>
internal sealed class ProgressLog : IProgress<MeasurementProgress>
{
    public List<MeasurementProgress> Reports { get; } = [];

    public void Report(MeasurementProgress value) => Reports.Add(value);
}

public sealed class ProfileRunnerTests : IDisposable
{
    // P = 8,16; D = 16,32: four points per repeat (decode-16: (1,1), (1,15); decode-32: (16,1), (16,16)).
    private static readonly BucketSet Buckets = new([8, 16], [16, 32]);
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lens-profile-");

    private string OutputPath => Path.Combine(_dir.FullName, "sub", "measurements.csv");

    public void Dispose() => _dir.Delete(recursive: true);

    private static ProfilingPlan Plan(int repeats = 1) => ProfilingPlanner.Create(Buckets, new PlanOptions(Repeats: repeats, Seed: 7));

    private static List<MeasuredRequest> ReadBack(string path)
    {
        using var reader = new StreamReader(path);
        return [.. LensCsv.ReadMeasurements(reader, path).Rows];
    }

    private static List<string> Keys(IEnumerable<PlanRow> rows) => [.. rows.Select(r => $"{r.Bucket}/{r.InputLength}/{r.OutputLength}")];

    private static List<string> Keys(IEnumerable<MeasuredRequest> rows) => [.. rows.Select(r => $"{r.Bucket}/{r.InputLength}/{r.OutputLength}")];

    [Fact]
    public async Task Runs_the_plan_in_order_and_writes_each_row_with_its_bucket()
    {
        var plan = Plan(repeats: 2);
        var backend = new ScriptedBackend();

        var summary = await new ProfileRunner(backend, new ProfileRunOptions { WarmupsPerBucket = 0 }).RunAsync(plan, OutputPath);

        var rows = ReadBack(OutputPath);
        Assert.Equal(Keys(plan.Rows), Keys(rows));
        Assert.Equal(plan.Rows.Select(r => (r.InputLength, r.OutputLength)), backend.Requests);
        Assert.All(rows, m => Assert.Equal(m.InputLength + (2.0 * m.OutputLength), m.E2eMs));
        Assert.Equal(LensCsv.MeasurementHeader, File.ReadLines(OutputPath).First());
        Assert.Equal(new ProfileSummary(8, 8, 0, [], 0, summary.DeviceTime, summary.Elapsed, false), summary with { Failures = [] });
        Assert.Empty(summary.Failures);
        Assert.True(summary.Complete);
        Assert.False(File.Exists(OutputPath + ".lock"));
    }

    [Fact]
    public async Task Warms_each_bucket_up_before_timing_and_keeps_no_warm_up_result()
    {
        var plan = Plan();
        var backend = new ScriptedBackend();

        var summary = await new ProfileRunner(backend, new ProfileRunOptions { WarmupsPerBucket = 2 }).RunAsync(plan, OutputPath);

        // Two buckets, two warm-ups each, with each bucket's largest request; then the plan.
        Assert.Equal(4, summary.WarmUpRequests);
        Assert.Equal(plan.Rows.Count + 4, backend.Requests.Count);
        var warm = backend.Requests.Take(4).ToHashSet();
        Assert.Equal([(1, 15), (16, 16)], warm.OrderBy(p => p.Input));
        Assert.Equal(plan.Rows.Count, ReadBack(OutputPath).Count);
    }

    [Fact]
    public async Task Resumes_a_cancelled_run_counting_repeats_by_occurrence()
    {
        var plan = Plan(repeats: 3);
        using var cts = new CancellationTokenSource();
        var first = new ScriptedBackend((n, i, o, _) =>
        {
            if (n == 7)
            {
                cts.Cancel();
            }

            return ScriptedBackend.Plausible(i, o);
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new ProfileRunner(first, new ProfileRunOptions { WarmupsPerBucket = 0 }).RunAsync(plan, OutputPath, cts.Token));
        var afterFirst = ReadBack(OutputPath);
        Assert.Equal(7, afterFirst.Count);
        Assert.EndsWith("\n", await File.ReadAllTextAsync(OutputPath), StringComparison.Ordinal);

        var second = new ScriptedBackend();
        var summary = await new ProfileRunner(second, new ProfileRunOptions { WarmupsPerBucket = 1 }).RunAsync(plan, OutputPath);

        Assert.Equal(7, summary.Skipped);
        Assert.Equal(plan.Rows.Count - 7, summary.Measured);
        Assert.Equal(Keys(plan.Rows), Keys(ReadBack(OutputPath)));
        // Warm-up, then exactly the rows the first run did not finish.
        Assert.Equal(plan.Rows.Skip(7).Select(r => (r.InputLength, r.OutputLength)), second.Requests.Skip(summary.WarmUpRequests));

        var third = new ScriptedBackend();
        var nothingLeft = await new ProfileRunner(third).RunAsync(plan, OutputPath);
        Assert.Empty(third.Requests);
        Assert.Equal(plan.Rows.Count, nothingLeft.Skipped);
        Assert.Equal(0, nothingLeft.WarmUpRequests);
    }

    [Fact]
    public void Pending_matches_by_bucket_and_lengths_and_counts_occurrences()
    {
        var a = new PlanRow(new BucketId(BucketKind.Decode, 16), 1, 15, 0, PlanRole.Slope);
        var b = new PlanRow(new BucketId(BucketKind.Prefill, 8), 1, 15, 0, PlanRole.Prefill); // same lengths, other bucket
        PlanRow[] rows = [a, b, a with { Repeat = 1 }, b with { Repeat = 1 }];
        MeasuredRequest[] done = [new(1, 15, 5, null, a.Bucket), new(1, 15, 5, null, a.Bucket), new(1, 15, 5)];

        var pending = ProfileRunner.Pending(rows, done);

        // Both decode-16 rows are covered by their own measurements; the bucket-less one covers the first prefill-8 row.
        Assert.Equal([b with { Repeat = 1 }], pending);
        Assert.Equal(8 - 3, ProfileRunner.Pending(rows, done, repeatMultiplier: 2).Count);
    }

    [Fact]
    public async Task A_cut_off_last_line_from_a_crash_is_dropped_and_measured_again()
    {
        var plan = Plan();
        Directory.CreateDirectory(Path.GetDirectoryName(OutputPath)!);
        var r0 = plan.Rows[0];
        await File.WriteAllTextAsync(OutputPath,
            $"{LensCsv.MeasurementHeader}\n{LensCsv.FormatMeasurement(new MeasuredRequest(r0.InputLength, r0.OutputLength, 3, 1, r0.Bucket))}\n" +
            $"{plan.Rows[1].Bucket},{plan.Rows[1].InputLength},{plan.Rows[1].OutputLength},12.");

        var summary = await new ProfileRunner(new ScriptedBackend(), new ProfileRunOptions { WarmupsPerBucket = 0 }).RunAsync(plan, OutputPath);

        Assert.True(summary.DroppedPartialLine);
        Assert.Equal(1, summary.Skipped);
        Assert.Equal(plan.Rows.Count - 1, summary.Measured);
        var rows = ReadBack(OutputPath);
        Assert.Equal(Keys(plan.Rows), Keys(rows));
        Assert.Equal(3, rows[0].E2eMs);
    }

    [Fact]
    public async Task Cancelling_inside_a_request_leaves_only_whole_lines()
    {
        var plan = Plan(repeats: 2);
        using var cts = new CancellationTokenSource();
        var backend = new ScriptedBackend((n, i, o, ct) =>
        {
            if (n == 5)
            {
                cts.Cancel();
                ct.ThrowIfCancellationRequested();
            }

            return ScriptedBackend.Plausible(i, o);
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new ProfileRunner(backend, new ProfileRunOptions { WarmupsPerBucket = 0 }).RunAsync(plan, OutputPath, cts.Token));

        var text = await File.ReadAllTextAsync(OutputPath);
        Assert.EndsWith("\n", text, StringComparison.Ordinal);
        Assert.Equal(4, ReadBack(OutputPath).Count);
    }

    [Fact]
    public async Task Stops_with_a_clear_error_after_consecutive_failures_keeping_what_was_measured()
    {
        var plan = Plan(repeats: 2);
        var backend = new ScriptedBackend((n, i, o, _) => n <= 2
            ? ScriptedBackend.Plausible(i, o)
            : throw new MeasurementFailedException("device lost", isTransient: true));

        var e = await Assert.ThrowsAsync<ProfileRunException>(() =>
            new ProfileRunner(backend, new ProfileRunOptions { WarmupsPerBucket = 0, StopAfterConsecutiveFailures = 3 }).RunAsync(plan, OutputPath));

        Assert.Contains("3 failed requests in a row", e.Message, StringComparison.Ordinal);
        Assert.Contains("device lost", e.Message, StringComparison.Ordinal);
        Assert.Contains("re-run to resume", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, e.Summary.Measured);
        Assert.Equal(3, e.Summary.Failures.Count);
        Assert.All(e.Summary.Failures, f => Assert.Equal("device lost", f.Reason));
        Assert.Equal(plan.Rows[2], e.Summary.Failures[0].Row);
        Assert.Equal(2, ReadBack(OutputPath).Count);
        Assert.IsType<MeasurementFailedException>(e.InnerException);
    }

    [Fact]
    public async Task Failed_warm_ups_count_towards_stopping()
    {
        var backend = new ScriptedBackend((_, _, _, _) => throw new MeasurementFailedException("connection refused", isTransient: true));

        var e = await Assert.ThrowsAsync<ProfileRunException>(() =>
            new ProfileRunner(backend, new ProfileRunOptions { WarmupsPerBucket = 2, StopAfterConsecutiveFailures = 3 }).RunAsync(Plan(), OutputPath));

        Assert.Contains("warming up", e.Message, StringComparison.Ordinal);
        Assert.All(e.Summary.Failures, f => Assert.True(f.DuringWarmUp));
        Assert.Equal(3, backend.Requests.Count);
        Assert.Equal([LensCsv.MeasurementHeader], File.ReadAllLines(OutputPath));
    }

    [Fact]
    public async Task Going_on_past_failures_records_them_and_a_rerun_measures_only_the_failed_rows()
    {
        var plan = Plan(repeats: 2);
        var failing = plan.Rows[1];
        var flaky = new ScriptedBackend((_, i, o, _) => (i, o) == (failing.InputLength, failing.OutputLength)
            ? throw new MeasurementFailedException($"server produced 3 output tokens, {o} were asked for", isTransient: false)
            : ScriptedBackend.Plausible(i, o));

        var summary = await new ProfileRunner(flaky, new ProfileRunOptions { WarmupsPerBucket = 0, StopAfterConsecutiveFailures = null })
            .RunAsync(plan, OutputPath);

        var failedRows = plan.Rows.Where(r => r.InputLength == failing.InputLength && r.OutputLength == failing.OutputLength).ToArray();
        Assert.Equal(failedRows.Length, summary.Failures.Count);
        Assert.All(summary.Failures, f => Assert.False(f.IsTransient));
        Assert.Equal(failedRows.Length, summary.Remaining);
        Assert.False(summary.Complete);
        var text = summary.Describe();
        Assert.Contains($"{plan.Rows.Count - failedRows.Length} measured, 0 already in the file, {failedRows.Length} failed", text, StringComparison.Ordinal);
        Assert.Contains($"{failing.Bucket} I = {failing.InputLength}, O = {failing.OutputLength}, repeat 0: server produced 3", text, StringComparison.Ordinal);

        var good = new ScriptedBackend();
        var rerun = await new ProfileRunner(good, new ProfileRunOptions { WarmupsPerBucket = 0 }).RunAsync(plan, OutputPath);
        Assert.Equal(failedRows.Select(r => (r.InputLength, r.OutputLength)), good.Requests);
        Assert.True(rerun.Complete);
        Assert.Equal(Keys(plan.Rows).Order(), Keys(ReadBack(OutputPath)).Order());
    }

    [Theory]
    [InlineData(5, 7, 30.0, 3.0, "answered for I = 5, O = 7")]
    [InlineData(-1, -1, 30.0, 40.0, "TTFT must be positive and at most E2E")]
    [InlineData(-1, -1, double.NaN, null, "must be positive and finite")]
    public async Task Answers_that_cannot_be_kept_are_failures(int i, int o, double e2e, double? ttft, string reason)
    {
        var backend = new ScriptedBackend((_, ri, ro, _) => new TimedRequest(i < 0 ? ri : i, o < 0 ? ro : o, e2e, ttft));

        var summary = await new ProfileRunner(backend, new ProfileRunOptions { WarmupsPerBucket = 0, StopAfterConsecutiveFailures = null })
            .RunAsync(Plan(), OutputPath);

        Assert.Equal(0, summary.Measured);
        Assert.All(summary.Failures, f => Assert.Contains(reason, f.Reason, StringComparison.Ordinal));
        Assert.Equal([LensCsv.MeasurementHeader], File.ReadAllLines(OutputPath));
    }

    [Fact]
    public async Task The_repeat_multiplier_runs_the_plan_round_after_round()
    {
        var plan = Plan();
        var summary = await new ProfileRunner(new ScriptedBackend(), new ProfileRunOptions { WarmupsPerBucket = 0, RepeatMultiplier = 3 })
            .RunAsync(plan, OutputPath);

        Assert.Equal(12, summary.Total);
        Assert.Equal(Keys(plan.Rows.Concat(plan.Rows).Concat(plan.Rows)), Keys(ReadBack(OutputPath)));
    }

    [Fact]
    public async Task Reports_progress_before_each_request_and_at_the_end()
    {
        var progress = new ProgressLog();
        var plan = Plan(repeats: 2);

        await new ProfileRunner(new ScriptedBackend(), new ProfileRunOptions { WarmupsPerBucket = 1, Progress = progress }).RunAsync(plan, OutputPath);

        var warm = progress.Reports.Where(p => p.Phase == ProfilePhase.WarmUp).ToArray();
        var measure = progress.Reports.Where(p => p.Phase == ProfilePhase.Measure).ToArray();
        Assert.Equal(2, warm.Length);
        Assert.Equal(plan.Rows, measure.Select(p => p.Row!.Value));
        Assert.Equal(Enumerable.Range(0, 8), measure.Select(p => p.Done));
        Assert.All(measure, p => Assert.Equal(8, p.Total));
        Assert.Null(measure[0].Eta);
        Assert.All(measure.Skip(1), p => Assert.NotNull(p.Eta));
        var last = progress.Reports[^1];
        Assert.Equal(ProfilePhase.Finished, last.Phase);
        Assert.Equal(8, last.Done);
        Assert.Null(last.Row);
    }

    [Fact]
    public async Task An_output_file_with_another_header_is_refused_untouched()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(OutputPath)!);
        const string other = "input_len,output_len,e2e_ms\n1,1,5\n";
        await File.WriteAllTextAsync(OutputPath, other);

        var e = await Assert.ThrowsAsync<InvalidDataException>(() => new ProfileRunner(new ScriptedBackend()).RunAsync(Plan(), OutputPath));

        Assert.Contains("not 'bucket,input_len,output_len,e2e_ms,ttft_ms'", e.Message, StringComparison.Ordinal);
        Assert.Equal(other, await File.ReadAllTextAsync(OutputPath));
    }

    [Fact]
    public async Task A_second_run_cannot_write_the_same_file_at_the_same_time()
    {
        var plan = Plan();
        var inside = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = new BlockingBackend(inside, release.Task);

        var first = new ProfileRunner(slow, new ProfileRunOptions { WarmupsPerBucket = 0 }).RunAsync(plan, OutputPath);
        await inside.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var e = await Assert.ThrowsAsync<IOException>(() => new ProfileRunner(new ScriptedBackend()).RunAsync(plan, OutputPath));
        release.SetResult();
        await first.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Contains("another profiling run", e.Message, StringComparison.Ordinal);
        Assert.Equal(plan.Rows.Count, ReadBack(OutputPath).Count);
    }

    [Fact]
    public async Task Profiles_a_simulated_device_whose_measurements_fit_back_to_it()
    {
        var model = new DeploymentModel(Buckets,
            [new PrefillValues(8, 20, 0, 20, 0, 0), new PrefillValues(16, 30, 0, 30, 0, 0)],
            [new DecodeValues(16, 2, 0), new DecodeValues(32, 3, 0)],
            RepeatStatistic.Min, 0);
        var plan = Plan(repeats: 2);

        var summary = await new ProfileRunner(new ModelReplayBackend(model), new ProfileRunOptions { WarmupsPerBucket = 1 }).RunAsync(plan, OutputPath);

        Assert.True(summary.Complete);
        var rows = ReadBack(OutputPath);
        Assert.All(rows, m => Assert.Equal(model.Predict(m.InputLength, m.OutputLength).E2eMs, m.E2eMs, 9));
        Assert.All(rows, m => Assert.Equal(model.Predict(m.InputLength, m.OutputLength).TtftMs, m.TtftMs!.Value, 9));
    }

    private sealed class BlockingBackend(TaskCompletionSource inside, Task release) : IMeasurementBackend
    {
        public string Describe => "blocks until released";

        public async Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default)
        {
            inside.TrySetResult();
            await release.WaitAsync(cancellationToken);
            return ScriptedBackend.Plausible(inputLength, outputLength);
        }
    }
}
