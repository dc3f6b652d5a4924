using System.Diagnostics;
using System.Globalization;
using System.Text;
using Lens.Core;

namespace Lens.Measurement;


/// <summary>Settings of <see cref="ProfileRunner"/>.</summary>
public sealed record ProfileRunOptions
{
    /// <summary>Untimed requests per bucket before timing starts (first calls compile or load graphs); 0 skips warm-up.</summary>
    public int WarmupsPerBucket { get; init; } = 1;

    /// <summary>Runs the whole plan this many times, round after round (on top of the plan's own repeats).</summary>
    public int RepeatMultiplier { get; init; } = 1;

    /// <summary>
    /// Stop with a <see cref="ProfileRunException"/> after this many failed requests in a row (after the backend's own retries);
    /// null records every failure and goes on to the end.
    /// </summary>
    public int? StopAfterConsecutiveFailures { get; init; } = 3;

    /// <summary>Flush each appended line through to the disk, not only to the operating system (survives a power loss).</summary>
    public bool FlushToDisk { get; init; } = true;

    /// <summary>Told before each request and once at the end; called on the runner's thread.</summary>
    public IProgress<MeasurementProgress>? Progress { get; init; }

    internal void Validate()
    {
        if (WarmupsPerBucket is < 0 or > 100)
        {
            throw new ArgumentException($"warm-ups per bucket must be in 0..100; got {WarmupsPerBucket}");
        }

        if (RepeatMultiplier is < 1 or > PlanOptions.MaxRepeats)
        {
            throw new ArgumentException($"repeat multiplier must be in 1..{PlanOptions.MaxRepeats}; got {RepeatMultiplier}");
        }

        if (StopAfterConsecutiveFailures is < 1)
        {
            throw new ArgumentException($"consecutive failures before stopping must be at least 1 (or null: never stop); got {StopAfterConsecutiveFailures}");
        }
    }
}

/// <summary>Which part of a run a progress report belongs to.</summary>
public enum ProfilePhase
{
    WarmUp,
    Measure,
    Finished,
}

/// <summary>
/// Where a run stands. <paramref name="Done"/> counts plan rows dealt with (measured before or now, or failed) of
/// <paramref name="Total"/>; during warm-up it counts warm-up requests of <paramref name="Total"/> warm-ups.
/// </summary>
/// <param name="Row">The row about to run; null in the final report.</param>
/// <param name="Eta">Estimated time left, from the mean device time of this run's requests so far; null before the first.</param>
public sealed record MeasurementProgress(ProfilePhase Phase, int Done, int Total, PlanRow? Row, TimeSpan Elapsed, TimeSpan? Eta);

/// <summary>A request that failed after the backend's retries.</summary>
public sealed record ProfileFailure(PlanRow Row, string Reason, bool IsTransient, bool DuringWarmUp);

/// <summary>What a run did.</summary>
/// <param name="Total">Plan rows, times the repeat multiplier.</param>
/// <param name="Measured">Rows measured and appended by this run.</param>
/// <param name="Skipped">Rows already in the output file from an earlier run.</param>
/// <param name="Failures">Failed requests with their reasons (warm-ups included), in order.</param>
/// <param name="WarmUpRequests">Warm-up requests that succeeded.</param>
/// <param name="DeviceTime">Time spent waiting on the backend (warm-ups, retries and failures included).</param>
/// <param name="Elapsed">Wall time of the run.</param>
/// <param name="DroppedPartialLine">Whether the output file ended in a cut-off line (an earlier crash) that was removed.</param>
/// <param name="DroppedPartialGroupRows">Rows of groups the file held only in part (an interrupted group), removed and measured again.</param>
public sealed record ProfileSummary(
    int Total,
    int Measured,
    int Skipped,
    IReadOnlyList<ProfileFailure> Failures,
    int WarmUpRequests,
    TimeSpan DeviceTime,
    TimeSpan Elapsed,
    bool DroppedPartialLine,
    int DroppedPartialGroupRows = 0)
{
    /// <summary>Rows still to measure; a re-run measures exactly these.</summary>
    public int Remaining => Total - Measured - Skipped;

    public bool Complete => Remaining == 0;

    /// <summary>A few lines for people: counts, times, and each failure with its reason (at most <paramref name="maxFailures"/>).</summary>
    public string Describe(int maxFailures = 10)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"{Measured} measured, {Skipped} already in the file, {Failures.Count(f => !f.DuringWarmUp)} failed, {Remaining} of {Total} left; ");
        text.Append(CultureInfo.InvariantCulture,
            $"{WarmUpRequests} warm-up requests; device time {DeviceTime.TotalSeconds:0.###} s, elapsed {Elapsed.TotalSeconds:0.###} s");
        if (DroppedPartialLine)
        {
            text.Append("\nthe output file ended in a cut-off line (an earlier run was interrupted); it was removed and measured again");
        }

        if (DroppedPartialGroupRows > 0)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"\n{DroppedPartialGroupRows} rows of interrupted groups were removed from the output file; their groups were measured again whole");
        }

        foreach (var f in Failures.Take(maxFailures))
        {
            text.Append(CultureInfo.InvariantCulture,
                $"\n{(f.DuringWarmUp ? "warm-up " : "")}{f.Row.Bucket} I = {f.Row.InputLength}, O = {f.Row.OutputLength}, repeat {f.Row.Repeat}: " +
                $"{f.Reason}{(f.IsTransient ? " (transient)" : "")}");
        }

        if (Failures.Count > maxFailures)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n... and {Failures.Count - maxFailures} more failures");
        }

        return text.ToString();
    }
}

/// <summary>A run stopped by failures; <see cref="Summary"/> says what was done (all of it kept in the output file).</summary>
public sealed class ProfileRunException(string message, ProfileSummary summary, Exception? inner = null) : Exception(message, inner)
{
    public ProfileSummary Summary { get; } = summary;
}

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
/// </summary>
public sealed class ProfileRunner
{
    private readonly IMeasurementBackend _backend;
    private readonly ProfileRunOptions _options;
    private int _running;

    public ProfileRunner(IMeasurementBackend backend, ProfileRunOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        options ??= new ProfileRunOptions();
        options.Validate();
        _backend = backend;
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

    /// <summary>
    /// The rows of <paramref name="rows"/> (times <paramref name="repeatMultiplier"/>) that <paramref name="done"/> does not cover, in
    /// run order: each finished measurement covers one plan row of the same bucket, input and output length (a measurement without a
    /// bucket covers a row of any bucket with those lengths).
    /// </summary>
    public static IReadOnlyList<PlanRow> Pending(IReadOnlyList<PlanRow> rows, IEnumerable<MeasuredRequest> done, int repeatMultiplier = 1)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(done);
        var exact = new Dictionary<(BucketId, int, int), int>();
        var anyBucket = new Dictionary<(int, int), int>();
        foreach (var m in done)
        {
            if (m.Bucket is { } b)
            {
                exact[(b, m.InputLength, m.OutputLength)] = exact.GetValueOrDefault((b, m.InputLength, m.OutputLength)) + 1;
            }
            else
            {
                anyBucket[(m.InputLength, m.OutputLength)] = anyBucket.GetValueOrDefault((m.InputLength, m.OutputLength)) + 1;
            }
        }

        var pending = new List<PlanRow>();
        foreach (var row in Expand(rows, repeatMultiplier))
        {
            var key = (row.Bucket, row.InputLength, row.OutputLength);
            if (exact.TryGetValue(key, out var n) && n > 0)
            {
                exact[key] = n - 1;
            }
            else if (anyBucket.TryGetValue((row.InputLength, row.OutputLength), out var k) && k > 0)
            {
                anyBucket[(row.InputLength, row.OutputLength)] = k - 1;
            }
            else
            {
                pending.Add(row);
            }
        }

        return pending;
    }

    /// <summary>Whether a plan runs its rows as groups (it has batch buckets above 1): then every row gets a group id.</summary>
    public static bool IsGrouped(IReadOnlyList<PlanRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return rows.Any(r => r.Batch != 1);
    }

    /// <summary>
    /// The groups of a grouped plan (times <paramref name="repeatMultiplier"/>) that <paramref name="done"/> does not hold whole, in run
    /// order, each with its group id (round * rows + index). A group is done when the file holds exactly <c>b</c> rows with its id; those
    /// rows must match the plan row (bucket, lengths, batch), or the file belongs to another plan and this throws. Ids beyond the plan
    /// and rows without a group are other measurements: they cover nothing.
    /// </summary>
    public static IReadOnlyList<(PlanRow Row, long Group)> PendingGroups(IReadOnlyList<PlanRow> rows, IEnumerable<MeasuredRequest> done,
        int repeatMultiplier = 1)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(done);
        var total = (long)rows.Count * repeatMultiplier;
        var counts = new Dictionary<long, int>();
        foreach (var m in done)
        {
            if (m.Group is not { } g || g >= total)
            {
                continue;
            }

            var row = rows[(int)(g % rows.Count)];
            if (m.Bucket != row.Bucket || m.InputLength != row.InputLength || m.OutputLength != row.OutputLength || m.Batch != row.Batch)
            {
                throw new InvalidDataException(
                    $"the output file's group {g} is {m.Bucket} I = {m.InputLength}, O = {m.OutputLength}, batch {m.Batch}, but the plan's group " +
                    $"{g} is {row.Bucket} I = {row.InputLength}, O = {row.OutputLength}, batch {row.Batch}: the file was written for another plan. " +
                    "Write to a new file");
            }

            counts[g] = counts.GetValueOrDefault(g) + 1;
        }

        var pending = new List<(PlanRow, long)>();
        long id = 0;
        foreach (var row in Expand(rows, repeatMultiplier))
        {
            if (counts.GetValueOrDefault(id) != row.Batch)
            {
                pending.Add((row, id));
            }

            id++;
        }

        return pending;
    }

    private static IEnumerable<PlanRow> Expand(IReadOnlyList<PlanRow> rows, int repeatMultiplier)
    {
        for (var round = 0; round < repeatMultiplier; round++)
        {
            foreach (var row in rows)
            {
                yield return row;
            }
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

    /// <summary>Warms up each bucket that has rows left with its largest pending request (it touches the most graphs).</summary>
    private async Task WarmUpAsync(IReadOnlyList<PlanRow> pending, RunState state, Stopwatch clock, CancellationToken cancellationToken)
    {
        var warmRows = pending
            .GroupBy(r => r.Bucket)
            .Select(g => g.OrderByDescending(r => (long)r.InputLength + r.OutputLength).First())
            .ToArray();
        var total = warmRows.Length * _options.WarmupsPerBucket;
        var done = 0;
        var deviceTime = TimeSpan.Zero;
        foreach (var row in warmRows)
        {
            for (var n = 0; n < _options.WarmupsPerBucket; n++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                TimeSpan? eta = done > 0 ? deviceTime / done * (total - done) : null;
                _options.Progress?.Report(new MeasurementProgress(ProfilePhase.WarmUp, done, total, row, clock.Elapsed, eta));
                var (results, took) = await MeasureAsync(row, state, cancellationToken, warmUp: true);
                deviceTime += took;
                done++;
                if (results is not null)
                {
                    state.WarmUps++;
                }
            }
        }
    }

    /// <summary>
    /// One plan row: a request, or a group of <see cref="PlanRow.Batch"/> requests released at once. A failure is recorded (and may
    /// stop the run), a success resets the run of failures.
    /// </summary>
    private async Task<(IReadOnlyList<TimedRequest>? Results, TimeSpan Took)> MeasureAsync(PlanRow row, RunState state,
        CancellationToken cancellationToken, bool warmUp = false)
    {
        var start = Stopwatch.GetTimestamp();
        string reason;
        bool transient;
        Exception? fault;
        try
        {
            IReadOnlyList<TimedRequest> results = row.Batch == 1
                ? [await _backend.MeasureAsync(row.InputLength, row.OutputLength, cancellationToken)]
                : await _backend.MeasureGroupAsync(row.InputLength, row.OutputLength, row.Batch, cancellationToken);
            var took = Stopwatch.GetElapsedTime(start);
            state.DeviceTime += took;
            var problem = results.Count != row.Batch
                ? $"the backend answered {results.Count} requests for a group of {row.Batch}"
                : results.Select(r => Invalid(r, row)).FirstOrDefault(p => p is not null);
            if (problem is null)
            {
                state.ConsecutiveFailures = 0;
                return (results, took);
            }

            (reason, transient, fault) = (problem, false, null);
        }
        catch (MeasurementFailedException e)
        {
            state.DeviceTime += Stopwatch.GetElapsedTime(start);
            (reason, transient, fault) = (e.Message, e.IsTransient, e);
        }

        state.Failures.Add(new ProfileFailure(row, reason, transient, warmUp));
        state.ConsecutiveFailures++;
        if (_options.StopAfterConsecutiveFailures is { } limit && state.ConsecutiveFailures >= limit)
        {
            var summary = state.Summary();
            throw new ProfileRunException(
                $"profiling stopped after {state.ConsecutiveFailures} failed request{(state.ConsecutiveFailures == 1 ? "" : "s")} in a row " +
                $"against {_backend.Describe}; last, {(warmUp ? "warming up " : "")}{row.Bucket} I = {row.InputLength}, O = {row.OutputLength}: " +
                $"{reason}. {summary.Measured} measured now, {summary.Skipped} before, {summary.Remaining} left; re-run to resume.",
                summary,
                fault);
        }

        return (null, Stopwatch.GetElapsedTime(start));
    }

    /// <summary>Why a backend's answer cannot be kept (its counts differ, or its times would not read back from the CSV); null if fine.</summary>
    private static string? Invalid(TimedRequest result, PlanRow row)
    {
        if (result.InputLength != row.InputLength || result.OutputLength != row.OutputLength)
        {
            return $"the backend answered for I = {result.InputLength}, O = {result.OutputLength}, not the requested I = {row.InputLength}, " +
                   $"O = {row.OutputLength}";
        }

        if (!double.IsFinite(result.E2eMs) || result.E2eMs <= 0)
        {
            return $"the backend reported E2E {result.E2eMs} ms; it must be positive and finite";
        }

        if (result.TtftMs is { } t && (!double.IsFinite(t) || t <= 0 || t > result.E2eMs))
        {
            return $"the backend reported TTFT {t} ms with E2E {result.E2eMs} ms; TTFT must be positive and at most E2E";
        }

        return null;
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

/// <summary>
/// The output CSV of a run, held open for appending (others may read it; a second run is refused). On opening, a last line without
/// its newline (cut off by a crash) is removed; each appended measurement is one write of a whole line, then a flush.
/// </summary>
internal sealed class MeasurementFile : IDisposable
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);
    private readonly FileStream _guard;
    private readonly bool _flushToDisk;
    private FileStream _stream;

    private MeasurementFile(FileStream stream, FileStream guard, bool flushToDisk, bool grouped)
    {
        _stream = stream;
        _guard = guard;
        _flushToDisk = flushToDisk;
        Grouped = grouped;
    }

    public IReadOnlyList<MeasuredRequest> Existing { get; private set; } = [];

    public bool DroppedPartialLine { get; private set; }

    /// <summary>Whether rows carry <c>batch</c> and <c>group</c> (<see cref="LensCsv.BatchedMeasurementHeader"/>).</summary>
    public bool Grouped { get; }

    public int DroppedPartialGroupRows { get; private set; }

    private string Header => LensCsv.MeasurementHeaderFor(Grouped);

    public static MeasurementFile Open(string path, bool flushToDisk, bool grouped = false)
    {
        var full = Path.GetFullPath(path);
        if (Path.GetDirectoryName(full) is { Length: > 0 } directory)
        {
            Directory.CreateDirectory(directory);
        }

        // One writer at a time, while anyone may read the CSV: the writer holds an exclusive lock file beside it (an advisory lock on
        // Unix, released by the system even if the process dies).
        FileStream guard;
        try
        {
            guard = new FileStream(full + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException e)
        {
            throw new IOException($"cannot append measurements to {path}: another profiling run is writing it ({e.Message})", e);
        }

        FileStream? stream = null;
        try
        {
            stream = new FileStream(full, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
            var file = new MeasurementFile(stream, guard, flushToDisk, grouped);
            stream = null;
            try
            {
                file.ReadExisting(full, path);
                if (file._stream.Length == 0)
                {
                    file.Write(file.Header + "\n");
                }
            }
            catch
            {
                file._stream.Dispose();
                throw;
            }

            return file;
        }
        catch
        {
            stream?.Dispose();
            guard.Dispose();
            throw;
        }
    }

    public void Append(MeasuredRequest measurement) => Write(LensCsv.FormatMeasurement(measurement, Grouped) + "\n");

    /// <summary>Appends the rows of one group in a single write: a crash leaves at most a cut-off last line, never a torn group.</summary>
    public void Append(IReadOnlyList<MeasuredRequest> measurements)
    {
        var text = new StringBuilder();
        foreach (var m in measurements)
        {
            text.Append(LensCsv.FormatMeasurement(m, Grouped)).Append('\n');
        }

        Write(text.ToString());
    }

    public void Dispose()
    {
        _stream.Dispose();
        _guard.Dispose();
    }

    private void Write(string text)
    {
        var bytes = Utf8.GetBytes(text);
        _stream.Seek(0, SeekOrigin.End);
        _stream.Write(bytes);
        _stream.Flush(_flushToDisk);
    }

    /// <summary>
    /// Reads what the file holds: removes a cut-off last line, checks the header, and in a grouped file removes the rows of every group
    /// it holds in part (rewritten through a temporary file and a rename, so a crash now loses nothing whole).
    /// </summary>
    private void ReadExisting(string full, string path)
    {
        var stream = _stream;
        if (stream.Length == 0)
        {
            return;
        }

        var bytes = new byte[stream.Length];
        stream.Position = 0;
        stream.ReadExactly(bytes);
        if (bytes[^1] != (byte)'\n')
        {
            // A crash while appending: the last line is incomplete. Its numbers may look whole (cut at a comma), so never trust it.
            var keep = Array.LastIndexOf(bytes, (byte)'\n') + 1;
            stream.SetLength(keep);
            bytes = bytes[..keep];
            DroppedPartialLine = true;
            if (keep == 0)
            {
                return; // not even the header was complete: start afresh
            }
        }

        using var reader = new StreamReader(new MemoryStream(bytes), Utf8, detectEncodingFromByteOrderMarks: true);
        var text = reader.ReadToEnd();
        var header = text.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0 && !l.StartsWith('#'));
        if (header is null)
        {
            throw new InvalidDataException($"{path} holds no header; expected '{Header}' (or an empty or missing file)");
        }

        if (!string.Equals(header, Header, StringComparison.OrdinalIgnoreCase))
        {
            var why = Grouped ? "this plan runs groups (batch buckets), whose rows carry batch and group" : "this plan runs single requests";
            throw new InvalidDataException(
                $"{path} has the header '{header}', not '{Header}' ({why}); appending would misplace columns. " +
                "Write to a new file, or convert this one first");
        }

        var rows = LensCsv.ReadMeasurements(new StringReader(text), path);
        Existing = rows.Rows;
        if (Grouped)
        {
            DropPartialGroups(rows, text, full);
        }
    }

    private void DropPartialGroups(CsvRows<MeasuredRequest> rows, string text, string full)
    {
        var drop = MeasurementGroups.PartialRows(rows.Rows).Select(n => rows.Lines[n]).ToHashSet();
        if (drop.Count == 0)
        {
            return;
        }

        var lines = text.Split('\n');
        var rewritten = new StringBuilder(text.Length);
        for (var n = 0; n < lines.Length - 1; n++) // the text ends in '\n': the last element is empty
        {
            if (!drop.Contains(n + 1))
            {
                rewritten.Append(lines[n]).Append('\n');
            }
        }

        var temp = full + ".rewrite";
        using (var writer = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            writer.Write(Utf8.GetBytes(rewritten.ToString()));
            writer.Flush(flushToDisk: true);
        }

        _stream.Dispose();
        File.Move(temp, full, overwrite: true);
        _stream = new FileStream(full, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        Existing = [.. rows.Rows.Where((_, n) => !drop.Contains(rows.Lines[n]))];
        DroppedPartialGroupRows = drop.Count;
    }
}
