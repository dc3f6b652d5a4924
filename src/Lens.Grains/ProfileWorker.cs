using Lens.Abstractions;
using Lens.Measurement;
using Microsoft.Extensions.Logging;

namespace Lens.Grains;

/// <summary>
/// Runs a device's profiling off the grain turn: asks the grain for a row, times it through the <see cref="MeasurementLoop"/> the CLI's
/// runner uses too (retries of transient faults within <see cref="LensGrainOptions.MaxAttempts"/>, the one budget), hands the result
/// back, and repeats. One worker per device activation, so one request at a time.
/// </summary>
internal static class ProfileWorker
{
    /// <summary>Longest backend error kept in a run's <c>lastError</c>: a tenant reads it, and a backend's answer is not the tenant's to see in full.</summary>
    internal const int MaxErrorChars = 200;

    public static async Task RunAsync(IDeviceProfileSteps device, Guid workerId, IMeasurementBackendFactory factory, LensGrainOptions options,
        TimeProvider time, ILogger logger, string tenant, string deviceName, CancellationToken cancellationToken)
    {
        IMeasurementBackend? backend = null;
        MeasurementLoop? loop = null;
        BackendSpec? backendSpec = null;
        try
        {
            var step = await device.NextStepAsync(workerId);
            while (step is not null && !cancellationToken.IsCancellationRequested)
            {
                StepOutcome outcome;
                try
                {
                    if (loop is null || backendSpec != step.Backend)
                    {
                        (backend as IDisposable)?.Dispose();
                        (backend, loop, backendSpec) = (null, null, null);
                        backend = factory.Create(tenant, step.Backend);
                        loop = new MeasurementLoop(backend, RetryPolicy(options, time),
                            r => GrainLog.TransientFault(logger, deviceName, r.FailedAttempt, r.Reason, r.Delay));
                        backendSpec = step.Backend;
                    }

                    outcome = await MeasureAsync(loop, step, cancellationToken);
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

    /// <summary>
    /// The service's retry budget (<c>Lens:Grains:MaxAttempts</c>, <c>InitialBackoff</c>, <c>MaxBackoff</c>) as the measurement loop's
    /// one policy: a planned row costs at most <see cref="LensGrainOptions.MaxAttempts"/> backend calls (see <see cref="MeasurementRetryPolicy"/>).
    /// </summary>
    internal static MeasurementRetryPolicy RetryPolicy(LensGrainOptions options, TimeProvider time) => new()
    {
        MaxAttempts = options.MaxAttempts,
        InitialBackoff = options.InitialBackoff,
        MaxBackoff = options.MaxBackoff,
        TimeProvider = time,
    };

    /// <summary>One planned row through the shared <see cref="MeasurementLoop"/>, its result as the device grain takes it.</summary>
    private static async Task<StepOutcome> MeasureAsync(MeasurementLoop loop, ProfileStep step, CancellationToken cancellationToken)
    {
        using var activity = LensTelemetry.ActivitySource.StartActivity("lens.profile.measure");
        activity?.SetTag(LensTelemetry.BucketTag, step.Bucket);
        activity?.SetTag("lens.input_length", step.InputLength);
        activity?.SetTag("lens.output_length", step.OutputLength);
        var row = await loop.MeasureAsync(step.InputLength, step.OutputLength, step.Batch, cancellationToken);
        if (row.Results is not { } timed)
        {
            return new StepOutcome(step.RunId, step.Index, 0, null, row.Retries, Failure(step, row.Reason ?? "failed", row.AttemptsNote));
        }

        // A batch bucket's point is a group of identical requests released at once: its E2E is the group's end, its TTFT the first.
        return step.Batch > 1
            ? new StepOutcome(step.RunId, step.Index, timed.Max(t => t.E2eMs), timed.Min(t => t.TtftMs), row.Retries, null,
                [.. timed.Select(t => t.E2eMs)], [.. timed.Select(t => t.TtftMs)])
            : new StepOutcome(step.RunId, step.Index, timed[0].E2eMs, timed[0].TtftMs, row.Retries, null);
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
