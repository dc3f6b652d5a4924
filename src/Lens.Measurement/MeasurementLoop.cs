using Lens.Core;

namespace Lens.Measurement;

/// <summary>
/// What measuring one plan row came to: the timed requests (one, or the group's <c>b</c> in start order), or why not; and how many
/// attempts it took (<see cref="MeasurementRetryPolicy"/>).
/// </summary>
/// <param name="Results">The successful attempt's requests, checked (<see cref="MeasurementLoop.Check"/>); null when the row failed.</param>
/// <param name="Attempts">Attempts made, the successful or last one included (1 when the first succeeded).</param>
/// <param name="Reason">Why the row failed (the last attempt's reason); null when it succeeded.</param>
/// <param name="IsTransient">Whether the last failure was transient (then every attempt of the budget was spent).</param>
/// <param name="Fault">The last attempt's exception, where the failure was one.</param>
public sealed record RowMeasurement(IReadOnlyList<TimedRequest>? Results, int Attempts, string? Reason, bool IsTransient, Exception? Fault)
{
    public bool Succeeded => Results is not null;

    /// <summary>Attempts beyond the first.</summary>
    public int Retries => Attempts - 1;

    /// <summary>" (gave up after n attempts)" after a transient failure that spent more than one attempt; otherwise empty.</summary>
    public string AttemptsNote => IsTransient && Attempts > 1 ? $" (gave up after {Attempts} attempts)" : "";
}

/// <summary>
/// The measurement loop of profiling, used by the CLI's <see cref="ProfileRunner"/> and the service's profile worker alike: measures one
/// plan row against one backend (method.md, "Profiling"). A row of batch 1 is one request (<see cref="IMeasurementBackend.MeasureAsync"/>);
/// a row of batch <c>b</c> above 1 is a group of <c>b</c> identical requests released together
/// (<see cref="IMeasurementBackend.MeasureGroupAsync"/>), kept only whole. Every answer is checked (<see cref="Check"/>: as many requests
/// as asked, the asked lengths, latencies that can be stored and read back); a transient fault is retried under
/// <see cref="MeasurementRetryPolicy"/>, the one retry budget (a retry runs the whole group again). A failure that is not transient, or
/// a check that fails, is not retried: the same request would fail the same way.
/// </summary>
public sealed class MeasurementLoop
{
    /// <summary>The longest latency a measurement may report (a day, in ms), as the service stores: a larger one is a unit error.</summary>
    public const double MaxLatencyMs = 86_400_000;

    private readonly Action<MeasurementRetry>? _onRetry;

    /// <param name="backend">One attempt per call: a backend that retries on its own (<see cref="IMeasurementBackend.RetriesPerCall"/>)
    /// is refused when <paramref name="retry"/> allows more than one attempt, so retries never stack.</param>
    /// <param name="retry">The retry budget; null: <see cref="MeasurementRetryPolicy"/>'s defaults.</param>
    /// <param name="onRetry">Told before each wait for a retry (logs, progress).</param>
    public MeasurementLoop(IMeasurementBackend backend, MeasurementRetryPolicy? retry = null, Action<MeasurementRetry>? onRetry = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        retry ??= new MeasurementRetryPolicy();
        retry.Validate();
        if (retry.MaxAttempts > 1 && backend.RetriesPerCall > 0)
        {
            throw new ArgumentException(
                $"{backend.Describe} retries {backend.RetriesPerCall} times on its own and the profiling loop {retry.MaxAttempts - 1} times: " +
                "retries would stack. Give the retries to the loop (MeasurementRetryPolicy) and build the backend without retries");
        }

        Backend = backend;
        Retry = retry;
        _onRetry = onRetry;
    }

    public IMeasurementBackend Backend { get; }

    public MeasurementRetryPolicy Retry { get; }

    /// <summary>The most backend attempts one row of <paramref name="batch"/> may cost: attempts x the backend's own x b.</summary>
    public int MaxRequestsPerRow(int batch) => Retry.MaxAttempts * (1 + Backend.RetriesPerCall) * Math.Max(1, batch);

    public Task<RowMeasurement> MeasureAsync(PlanRow row, CancellationToken cancellationToken = default) =>
        MeasureAsync(row.InputLength, row.OutputLength, row.Batch, cancellationToken);

    /// <summary>
    /// Measures one request (<paramref name="batch"/> 1) or one group of <paramref name="batch"/> identical requests, retrying transient
    /// faults. A failure comes back as a <see cref="RowMeasurement"/> without results; only cancellation and faults that are not
    /// <see cref="MeasurementFailedException"/>s (a backend's bug) are thrown.
    /// </summary>
    public async Task<RowMeasurement> MeasureAsync(int inputLength, int outputLength, int batch, CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; ; attempt++)
        {
            string reason;
            bool transient;
            Exception? fault = null;
            try
            {
                IReadOnlyList<TimedRequest> results = batch == 1
                    ? [await Backend.MeasureAsync(inputLength, outputLength, cancellationToken)]
                    : await Backend.MeasureGroupAsync(inputLength, outputLength, batch, cancellationToken);
                if (Check(results, inputLength, outputLength, batch) is not { } problem)
                {
                    return new RowMeasurement(results, attempt, null, false, null);
                }

                (reason, transient) = (problem, false);
            }
            catch (MeasurementFailedException e)
            {
                (reason, transient, fault) = (e.Message, e.IsTransient, e);
            }

            if (!transient || attempt >= Retry.MaxAttempts)
            {
                return new RowMeasurement(null, attempt, reason, transient, fault);
            }

            var delay = Retry.BackoffAfter(attempt);
            _onRetry?.Invoke(new MeasurementRetry(attempt, reason, delay));
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, Retry.TimeProvider, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Why a backend's answer to a row cannot be kept, or null: the one check of profiling. It must hold <paramref name="batch"/> requests,
    /// each of exactly the asked lengths, with an E2E that is positive, finite and at most <see cref="MaxLatencyMs"/>, and a TTFT (where
    /// seen) that is positive and at most the E2E; so every kept time reads back from the CSV and is accepted by the service.
    /// </summary>
    public static string? Check(IReadOnlyList<TimedRequest> results, int inputLength, int outputLength, int batch)
    {
        ArgumentNullException.ThrowIfNull(results);
        if (results.Count != batch)
        {
            return $"the backend answered {results.Count} requests for a group of {batch}";
        }

        foreach (var r in results)
        {
            if (r.InputLength != inputLength || r.OutputLength != outputLength)
            {
                return $"the backend answered for I = {r.InputLength}, O = {r.OutputLength}, not the requested I = {inputLength}, O = {outputLength}";
            }

            if (!double.IsFinite(r.E2eMs) || r.E2eMs <= 0 || r.E2eMs > MaxLatencyMs)
            {
                return $"the backend reported E2E {r.E2eMs} ms; it must be positive and finite, and at most {MaxLatencyMs} ms (a day)";
            }

            if (r.TtftMs is { } t && (!double.IsFinite(t) || t <= 0 || t > r.E2eMs))
            {
                return $"the backend reported TTFT {t} ms with E2E {r.E2eMs} ms; TTFT must be positive and at most E2E";
            }
        }

        return null;
    }
}
