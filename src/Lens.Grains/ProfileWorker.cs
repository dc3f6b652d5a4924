using Lens.Abstractions;
using Lens.Measurement;
using Microsoft.Extensions.Logging;

namespace Lens.Grains;

/// <summary>
/// Runs a device's profiling off the grain turn: asks the grain for a row, times it (with retries of transient faults and
/// exponential backoff), hands the result back, and repeats. One worker per device activation, so one request at a time.
/// </summary>
internal static class ProfileWorker
{
    /// <summary>Longest backend error kept in a run's <c>lastError</c>: a tenant reads it, and a backend's answer is not the tenant's to see in full.</summary>
    internal const int MaxErrorChars = 200;

    public static async Task RunAsync(IDeviceProfileSteps device, Guid workerId, IMeasurementBackendFactory factory, LensGrainOptions options,
        TimeProvider time, ILogger logger, string tenant, string deviceName, CancellationToken cancellationToken)
    {
        IMeasurementBackend? backend = null;
        BackendSpec? backendSpec = null;
        try
        {
            var step = await device.NextStepAsync(workerId);
            while (step is not null && !cancellationToken.IsCancellationRequested)
            {
                StepOutcome outcome;
                try
                {
                    if (backend is null || backendSpec != step.Backend)
                    {
                        (backend as IDisposable)?.Dispose();
                        backend = null;
                        backend = factory.Create(tenant, step.Backend);
                        backendSpec = step.Backend;
                    }

                    outcome = await MeasureAsync(backend, step, options, time, logger, deviceName, cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex) when (ex is NotSupportedException or ArgumentException or FormatException or InvalidOperationException or
                                               MeasurementFailedException or HttpRequestException or IOException)
                {
                    outcome = new StepOutcome(step.RunId, step.Index, 0, null, 0, Failure(step, ex.Message, ""));
                }

                if (cancellationToken.IsCancellationRequested)
                {
                    return; // the activation is going away: the row is measured again after resume
                }

                step = await device.CompleteStepAsync(workerId, outcome);
            }
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // The device's reminder starts a new worker; the run resumes at its durable next row.
            GrainLog.WorkerFailed(logger, ex, deviceName);
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping: nothing to report.
        }
        finally
        {
            (backend as IDisposable)?.Dispose();
        }
    }

    private static async Task<StepOutcome> MeasureAsync(IMeasurementBackend backend, ProfileStep step, LensGrainOptions options, TimeProvider time,
        ILogger logger, string deviceName, CancellationToken cancellationToken)
    {
        using var activity = LensTelemetry.ActivitySource.StartActivity("lens.profile.measure");
        activity?.SetTag(LensTelemetry.BucketTag, step.Bucket);
        activity?.SetTag("lens.input_length", step.InputLength);
        activity?.SetTag("lens.output_length", step.OutputLength);
        var delay = options.InitialBackoff;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                // A batch bucket's point is a group of identical requests released at once; a retry runs the whole group again.
                var timed = step.Batch > 1
                    ? await backend.MeasureGroupAsync(step.InputLength, step.OutputLength, step.Batch, cancellationToken)
                    : [await backend.MeasureAsync(step.InputLength, step.OutputLength, cancellationToken)];
                if (timed.Count != step.Batch)
                {
                    throw new MeasurementFailedException($"the backend timed {timed.Count} requests of a group of {step.Batch}", isTransient: false);
                }

                foreach (var t in timed)
                {
                    if (t.InputLength != step.InputLength || t.OutputLength != step.OutputLength)
                    {
                        throw new MeasurementFailedException(
                            $"the backend timed I={t.InputLength}, O={t.OutputLength} instead of I={step.InputLength}, O={step.OutputLength}",
                            isTransient: false);
                    }

                    if (MeasurementRecord.CheckValues(t.E2eMs, t.TtftMs) is { } bad)
                    {
                        throw new MeasurementFailedException($"the backend reported an impossible latency: {bad}", isTransient: false);
                    }
                }

                return step.Batch > 1
                    ? new StepOutcome(step.RunId, step.Index, timed.Max(t => t.E2eMs), timed.Min(t => t.TtftMs), attempt - 1, null,
                        [.. timed.Select(t => t.E2eMs)], [.. timed.Select(t => t.TtftMs)])
                    : new StepOutcome(step.RunId, step.Index, timed[0].E2eMs, timed[0].TtftMs, attempt - 1, null);
            }
            catch (MeasurementFailedException ex) when (ex.IsTransient && attempt < options.MaxAttempts)
            {
                GrainLog.TransientFault(logger, deviceName, attempt, ex.Message, delay);
                await Task.Delay(delay, time, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.MaxBackoff.Ticks));
            }
            catch (MeasurementFailedException ex)
            {
                var why = ex.IsTransient ? $" (still failing after {attempt} attempts)" : "";
                return new StepOutcome(step.RunId, step.Index, 0, null, attempt - 1, Failure(step, ex.Message, why));
            }
        }
    }

    /// <summary>The error a tenant sees: the row, and the first line of the backend's reason cut to <see cref="MaxErrorChars"/>.</summary>
    internal static string Failure(ProfileStep step, string reason, string suffix)
    {
        var line = reason.AsSpan();
        if (line.IndexOfAny('\r', '\n') is var end and >= 0)
        {
            line = line[..end];
        }

        var text = line.Length <= MaxErrorChars ? line.ToString() : string.Concat(line[..MaxErrorChars], "...");
        return $"{step.Bucket} (I={step.InputLength}, O={step.OutputLength}): {text}{suffix}";
    }
}
