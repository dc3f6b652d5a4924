using System.Diagnostics;
using System.Globalization;
using System.Text;
using Lens.Core;

namespace Lens.Measurement;

/// <summary>Settings of <see cref="LoadReplay"/>.</summary>
/// <param name="TimeScale">Multiplies every arrival time (0.5 replays the trace twice as fast).</param>
/// <param name="MaxConcurrency">Requests in flight at most; a request due while all slots are busy waits, and the wait counts in its times.</param>
public sealed record LoadReplayOptions(double TimeScale = 1, int MaxConcurrency = 1024)
{
    public const int MaxConcurrencyLimit = 65536;

    /// <summary>The latest arrival a replay schedules, after the time scale (about 116 days), so that clock arithmetic cannot overflow.</summary>
    public const double MaxArrivalMs = 1e10;

    internal void Validate()
    {
        if (!double.IsFinite(TimeScale) || TimeScale < 0 || TimeScale > 1e6)
        {
            throw new ArgumentException($"time scale must be a finite number in 0..1000000; got {TimeScale}");
        }

        if (MaxConcurrency is < 1 or > MaxConcurrencyLimit)
        {
            throw new ArgumentException($"max concurrency must be in 1..{MaxConcurrencyLimit}; got {MaxConcurrency}");
        }
    }
}

/// <summary>
/// One replayed request, in ms from its scheduled arrival (<see cref="ArrivalMs"/>, after the time scale), so that a late client or a
/// full concurrency limit shows in its latencies; <see cref="SendLagMs"/> is how late it was handed to the network.
/// <see cref="Error"/> is set (and the times are NaN) when it failed.
/// </summary>
public readonly record struct ReplayedRequest(
    double ArrivalMs, int InputLength, int OutputLength, double TtftMs, double E2eMs, double SendLagMs, string? Error)
{
    /// <summary>Mean time per output token after the first, <c>(E2E - TTFT) / (O - 1)</c>; NaN when <c>O = 1</c> or failed.</summary>
    public double TpotMs => OutputLength > 1 ? (E2eMs - TtftMs) / (OutputLength - 1) : double.NaN;

    public bool Failed => Error is not null;
}

/// <summary>What a replay measured, over its successful requests.</summary>
/// <param name="DurationMs">From the first scheduled arrival to the last completion.</param>
public sealed record ReplaySummary(
    int Requests,
    int Failed,
    LatencyPercentiles Ttft,
    LatencyPercentiles Tpot,
    LatencyPercentiles E2e,
    double DurationMs,
    double RequestsPerSecond,
    double OutputTokensPerSecond,
    double MeanSendLagMs,
    double MaxSendLagMs);

/// <summary>The requests in the trace's order, and their summary.</summary>
public sealed record ReplayResult(IReadOnlyList<ReplayedRequest> Requests, ReplaySummary Summary);

/// <summary>
/// Replays a workload trace against a backend as vLLM's <c>bench serve</c> does: every request is sent at its arrival time (never
/// earlier), concurrently with those in flight, bounded by <see cref="LoadReplayOptions.MaxConcurrency"/>; each is timed from its
/// scheduled arrival on one monotonic clock. A failed request is recorded with its reason, never dropped.
/// </summary>
public static class LoadReplay
{
    public const string Header = "arrival_ms,input_len,output_len,ttft_ms,e2e_ms,tpot_ms,send_lag_ms,error";

    public static async Task<ReplayResult> RunAsync(IMeasurementBackend backend, IReadOnlyList<TraceRequest> trace, LoadReplayOptions options,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(trace);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        for (var n = 0; n < trace.Count; n++)
        {
            if (trace[n].ArrivalMs * options.TimeScale > LoadReplayOptions.MaxArrivalMs)
            {
                throw new ArgumentException(
                    $"request #{n + 1} arrives at {trace[n].ArrivalMs * options.TimeScale} ms after the time scale; a replay spans at most {LoadReplayOptions.MaxArrivalMs} ms");
            }
        }

        // Send in arrival order; equal arrivals keep the trace's order.
        var order = Enumerable.Range(0, trace.Count).OrderBy(n => trace[n].ArrivalMs).ThenBy(n => n).ToArray();
        var results = new ReplayedRequest[trace.Count];
        var tasks = new List<Task>(trace.Count);
        using var slots = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        var start = Stopwatch.GetTimestamp();
        foreach (var n in order)
        {
            var request = trace[n];
            var arrival = request.ArrivalMs * options.TimeScale;
            var due = start + (long)(arrival / 1000 * Stopwatch.Frequency);
            await MonotonicClock.WaitUntilAsync(due, cancellationToken);
            await slots.WaitAsync(cancellationToken);
            tasks.Add(Task.Run(
                async () =>
                {
                    try
                    {
                        results[n] = await MeasureAsync(backend, request, arrival, due, cancellationToken);
                    }
                    finally
                    {
                        slots.Release();
                    }
                },
                CancellationToken.None));
        }

        await Task.WhenAll(tasks);
        var end = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return new ReplayResult(results, Summarize(results, end));
    }

    private static async Task<ReplayedRequest> MeasureAsync(IMeasurementBackend backend, TraceRequest request, double arrival, long due,
        CancellationToken cancellationToken)
    {
        try
        {
            var r = await backend.MeasureFromAsync(request.InputLength, request.OutputLength, due, cancellationToken);
            return new ReplayedRequest(arrival, request.InputLength, request.OutputLength, r.TtftMs ?? double.NaN, r.E2eMs, r.SendLagMs, null);
        }
        catch (MeasurementFailedException e)
        {
            return new ReplayedRequest(arrival, request.InputLength, request.OutputLength, double.NaN, double.NaN, double.NaN,
                string.IsNullOrWhiteSpace(e.Message) ? "failed" : e.Message);
        }
    }

    public static ReplaySummary Summarize(IReadOnlyList<ReplayedRequest> requests, double durationMs)
    {
        ArgumentNullException.ThrowIfNull(requests);
        var ok = requests.Where(r => !r.Failed).ToArray();
        var seconds = durationMs / 1000;
        var lags = ok.Select(r => r.SendLagMs).ToArray();
        return new ReplaySummary(
            requests.Count,
            requests.Count - ok.Length,
            LatencyPercentiles.Of(ok.Where(r => !double.IsNaN(r.TtftMs)).Select(r => r.TtftMs)),
            LatencyPercentiles.Of(ok.Where(r => r.OutputLength > 1 && !double.IsNaN(r.TtftMs)).Select(r => r.TpotMs)),
            LatencyPercentiles.Of(ok.Select(r => r.E2eMs)),
            durationMs,
            seconds > 0 ? ok.Length / seconds : double.NaN,
            seconds > 0 ? ok.Sum(r => (double)r.OutputLength) / seconds : double.NaN,
            lags.Length > 0 ? lags.Average() : double.NaN,
            lags.Length > 0 ? lags.Max() : double.NaN);
    }

    /// <summary>Writes the rows in the trace's order (<see cref="Header"/>); empty cells where a value does not exist.</summary>
    public static void Write(TextWriter writer, IReadOnlyList<ReplayedRequest> requests)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(requests);
        writer.WriteLine(Header);
        var line = new StringBuilder();
        foreach (var r in requests)
        {
            line.Clear();
            line.Append(CultureInfo.InvariantCulture, $"{r.ArrivalMs:0.###},{r.InputLength},{r.OutputLength},{Cell(r.TtftMs)},{Cell(r.E2eMs)},");
            line.Append(CultureInfo.InvariantCulture, $"{Cell(r.TpotMs)},{Cell(r.SendLagMs)},{OneCell(r.Error)}");
            writer.WriteLine(line);
        }
    }

    private static string Cell(double v) => double.IsFinite(v) ? v.ToString("0.####", CultureInfo.InvariantCulture) : "";

    /// <summary>An error message as one plain CSV cell (the project's CSVs are not quoted): commas become semicolons, line breaks spaces.</summary>
    private static string OneCell(string? text) => text is null ? "" : text.Replace(',', ';').Replace('\n', ' ').Replace('\r', ' ');
}

/// <summary>Waits on the monotonic clock (<see cref="Stopwatch.GetTimestamp"/>).</summary>
public static class MonotonicClock
{
    /// <summary>The last stretch before a deadline, waited by yielding instead of a timer.</summary>
    private static readonly TimeSpan YieldWindow = TimeSpan.FromMilliseconds(2);

    /// <summary>
    /// Returns once the clock has reached <paramref name="due"/>, never before. A timer wakes a millisecond or more late on Linux
    /// (a replay's requests left a median 2 ms after their arrival, which counted in their TTFT), so timers only bring the wait to
    /// within <see cref="YieldWindow"/> of the deadline; the rest is a loop that yields the core to any thread that is ready.
    /// </summary>
    public static async Task WaitUntilAsync(long due, CancellationToken cancellationToken)
    {
        while (Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due) is var left && left > YieldWindow)
        {
            await Task.Delay(left - YieldWindow, cancellationToken);
        }

        while (Stopwatch.GetTimestamp() < due)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Thread.Yield();
        }
    }
}
