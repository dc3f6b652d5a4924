using System.Diagnostics;

namespace Lens.Measurement;

/// <summary>One timed request: what was asked and what was seen, on a monotonic clock.</summary>
/// <param name="InputLength">Prompt tokens the server reported (must equal the request's).</param>
/// <param name="OutputLength">Output tokens the server reported (must equal the request's).</param>
/// <param name="E2eMs">From sending the request (or from the release instant it was timed from) to its last byte.</param>
/// <param name="TtftMs">To the first token, where the backend streams; null otherwise.</param>
/// <param name="TokenGapsMs">Gaps between streamed token chunks, where seen.</param>
/// <param name="SendLagMs">From the release instant to the moment the request was handed to the network (0 when timed from the send).</param>
public sealed record TimedRequest(
    int InputLength, int OutputLength, double E2eMs, double? TtftMs, IReadOnlyList<double>? TokenGapsMs = null, double SendLagMs = 0);

/// <summary>
/// "Run this request (I, O) and time it" (architecture.md, layer 2). Implementations: an OpenAI-compatible endpoint, a CSV of
/// measurements made elsewhere, the built-in reference engine. One call is one request; callers serialize calls per device.
/// </summary>
public interface IMeasurementBackend
{
    /// <summary>A short description for logs and progress (never a secret).</summary>
    string Describe { get; }

    /// <summary>
    /// Retries this backend makes on its own inside one call (0: one attempt per call, the default). Profiling retries in
    /// <see cref="MeasurementLoop"/> (<see cref="MeasurementRetryPolicy"/>), which refuses a backend that retries too, so that retries
    /// never stack.
    /// </summary>
    int RetriesPerCall => 0;

    /// <summary>
    /// Times one request of exactly <paramref name="inputLength"/> prompt and <paramref name="outputLength"/> output tokens.
    /// Throws <see cref="MeasurementFailedException"/> when the request failed or the server's token counts differ.
    /// </summary>
    Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default);

    /// <summary>
    /// Times one request from <paramref name="releaseTimestamp"/> (a <see cref="Stopwatch.GetTimestamp"/> value at or before the call):
    /// its E2E and TTFT include any wait between that instant and the send, so a late client shows. The default shifts
    /// <see cref="MeasureAsync"/>'s times by the time from the release to the call; backends that can stamp the send override it.
    /// </summary>
    async Task<TimedRequest> MeasureFromAsync(int inputLength, int outputLength, long releaseTimestamp, CancellationToken cancellationToken = default)
    {
        var lag = Stopwatch.GetElapsedTime(releaseTimestamp).TotalMilliseconds;
        var result = await MeasureAsync(inputLength, outputLength, cancellationToken);
        return result with { E2eMs = result.E2eMs + lag, TtftMs = result.TtftMs + lag, SendLagMs = lag };
    }

    /// <summary>
    /// Times a group of <paramref name="batch"/> identical requests (same lengths) released at once (method.md, "Batched serving"):
    /// all are sent concurrently and each is timed on one monotonic clock from the common release instant, so TTFTs show the
    /// prefill order and E2Es the group's end. The first failure cancels the rest and fails the whole group (a partial group
    /// measures nothing). The default runs <see cref="MeasureFromAsync"/> concurrently.
    /// </summary>
    Task<IReadOnlyList<TimedRequest>> MeasureGroupAsync(int inputLength, int outputLength, int batch, CancellationToken cancellationToken = default) =>
        MeasurementGroup.RunAsync(batch, (release, ct) => MeasureFromAsync(inputLength, outputLength, release, ct), cancellationToken);
}

/// <summary>Runs the members of a group concurrently from one release instant.</summary>
public static class MeasurementGroup
{
    /// <summary>The largest group a backend is asked to run at once.</summary>
    public const int MaxBatch = Core.LensCsv.MaxBatch;

    /// <summary>
    /// Starts <paramref name="batch"/> calls of <paramref name="member"/> at once, all given the same release timestamp, and returns
    /// their results in start order. The first failure cancels the others and is thrown (their cancellations are not).
    /// </summary>
    public static async Task<IReadOnlyList<T>> RunAsync<T>(int batch, Func<long, CancellationToken, Task<T>> member,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(member);
        if (batch is < 1 or > MaxBatch)
        {
            throw new MeasurementFailedException($"a group must have 1..{MaxBatch} requests; got {batch}", isTransient: false);
        }

        using var group = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var release = Stopwatch.GetTimestamp();
        var tasks = new Task<T>[batch];
        for (var n = 0; n < batch; n++)
        {
            // Task.Run: each member builds its body and sends on its own, so no member waits for another's send.
            tasks[n] = Task.Run(() => member(release, group.Token), group.Token);
            _ = tasks[n].ContinueWith(_ => CancelQuietly(group), CancellationToken.None,
                TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        try
        {
            return await Task.WhenAll(tasks);
        }
        catch when (!cancellationToken.IsCancellationRequested && tasks.FirstOrDefault(t => t.IsFaulted) is { } failed)
        {
            // The members cancelled because of it failed with OperationCanceledException: report the fault itself.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failed.Exception!.InnerException!);
            throw; // unreachable
        }
    }

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // the group already ended
        }
    }
}

/// <summary>A measurement that failed: the reason, and whether trying again may succeed (timeouts, 5xx, refused connections).</summary>
public sealed class MeasurementFailedException(string reason, bool isTransient, Exception? inner = null) : Exception(reason, inner)
{
    public bool IsTransient { get; } = isTransient;
}
