using Lens.Abstractions;
using Lens.Core;
using Lens.Grains;
using Lens.Otlp;

namespace Lens.Silo;

/// <summary>
/// Delivers the LLM requests of one OTLP export to the traffic monitors of the authenticated tenant's deployments. The grain key is
/// built from the authenticated tenant (never from the span): a span naming a device or deployment the tenant lacks is rejected
/// (counted and reported to the exporter), and never reaches another tenant's deployment even when it names one.
/// </summary>
internal static class OtlpRouting
{
    public static async Task<(long Rejected, string? Problem)> DeliverAsync(IGrainFactory grains, string tenant, OtlpIntake intake)
    {
        LensTelemetry.SpansReceived.Add(intake.Spans);
        long rejected = intake.Unrouted + intake.Invalid;
        var problem = intake.FirstProblem;
        if (intake.Unrouted > 0)
        {
            LensTelemetry.SpansRejected.Add(intake.Unrouted, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, "unrouted"));
        }

        if (intake.Invalid > 0)
        {
            LensTelemetry.SpansRejected.Add(intake.Invalid, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, "invalid"));
        }

        foreach (var (target, requests) in intake.Requests)
        {
            string? refusal = LensNames.Check(target.Device, "lens.device") ?? LensNames.Check(target.Deployment, "lens.deployment");
            if (refusal is null)
            {
                var key = new DeviceKey(tenant, target.Device).Deployment(target.Deployment).Format();
                try
                {
                    await grains.GetGrain<ITrafficMonitorGrain>(key).ObserveAsync(Batch(requests));
                    continue;
                }
                catch (LensException ex) when (ex.Kind is LensErrorKind.NotFound or LensErrorKind.Validation)
                {
                    refusal = ex.Kind == LensErrorKind.NotFound
                        ? $"deployment '{target.Deployment}' does not exist on device '{target.Device}'"
                        : ex.Message;
                }
            }

            rejected += requests.Count;
            problem ??= $"{requests.Count} spans rejected: {refusal}";
            LensTelemetry.SpansRejected.Add(requests.Count, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, "unknown"));
        }

        return (rejected, problem);
    }

    private static ObservedBatch Batch(List<ObservedRequest> requests)
    {
        var n = requests.Count;
        var batch = new ObservedBatch(new double[n], new int[n], new int[n], new double[n], new double[n], new double[n],
            requests.Any(r => r.Replica is not null) ? new string?[n] : null);
        for (var i = 0; i < n; i++)
        {
            var r = requests[i];
            batch.ArrivalMs[i] = r.ArrivalMs;
            batch.InputLengths[i] = r.InputLength;
            batch.OutputLengths[i] = r.OutputLength;
            batch.TtftMs[i] = r.TtftMs;
            batch.E2eMs[i] = r.E2eMs;
            batch.QueueMs[i] = r.QueueMs ?? double.NaN;
            if (batch.Replicas is { } replicas)
            {
                replicas[i] = r.Replica;
            }
        }

        return batch;
    }
}
