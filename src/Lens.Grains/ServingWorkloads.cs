using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// Maps a <see cref="SimulateRequest"/> (a trace, one of each per request, or a generated <see cref="WorkloadSpec"/>) onto the core's
/// <see cref="Workload"/>, which validates it (errors name the JSON field and its allowed range) and generates its trace; and a run
/// onto its report.
/// </summary>
internal static class ServingWorkloads
{
    /// <summary>The workload of <paramref name="request"/> (validated under the model's scheduling policy, at most
    /// <paramref name="maxRequests"/> requests) and its trace on <paramref name="model"/>.</summary>
    public static (Workload Workload, IReadOnlyList<TraceRequest> Trace) Trace(DeploymentModel model, SimulateRequest? request, int maxRequests)
    {
        var workload = WorkloadOf(request);
        Throw(workload.Validate(FieldOf, maxRequests, model));
        return (workload, workload.Generate(model).Requests);
    }

    /// <summary>The workload of <paramref name="request"/> (validated, at most <paramref name="maxRequests"/> requests) and its trace on <paramref name="buckets"/>.</summary>
    public static (Workload Workload, IReadOnlyList<TraceRequest> Trace) Trace(BucketSet buckets, SimulateRequest? request, int maxRequests)
    {
        var workload = Validated(buckets, request, maxRequests);
        return (workload, workload.Generate(buckets).Requests);
    }

    /// <summary>The workload of <paramref name="request"/>, validated (at most <paramref name="maxRequests"/> requests, on <paramref name="buckets"/>).</summary>
    public static Workload Validated(BucketSet buckets, SimulateRequest? request, int maxRequests)
    {
        var workload = WorkloadOf(request);
        Throw(workload.Validate(FieldOf, maxRequests, buckets));
        return workload;
    }

    private static void Throw(WorkloadError? error)
    {
        if (error is { } e)
        {
            throw LensException.Validation(FieldOf(e.Field), e.Message);
        }
    }

    public static SimulationReport Report(ServingRun run, Workload workload, bool includeRequests, long modelVersion)
    {
        var r = run.Summarize(workload.Slo);
        return new SimulationReport(r.Requests, r.Replicas, r.MaxNumSeqs, Summary(r.Ttft), Summary(r.Tpot), Summary(r.E2e), Summary(r.QueueWait),
            r.RequestsPerSecond, r.OutputTokensPerSecond, r.Utilization, r.SloAttainment, r.GoodputPerSecond, r.DecodeSteps, modelVersion,
            includeRequests ? [.. run.Requests.Select(s => s.TtftMs)] : null,
            includeRequests ? [.. run.Requests.Select(s => s.E2eMs)] : null,
            includeRequests ? [.. run.Requests.Select(s => double.IsNaN(s.TpotMs) ? (double?)null : s.TpotMs)] : null);
    }

    private static Workload WorkloadOf(SimulateRequest? request)
    {
        if (request is null)
        {
            throw LensException.Validation("request", "a trace (arrivalMs, inputLengths, outputLengths) or a workload is required");
        }

        var shared = new Workload
        {
            SloTtftMs = request.SloTtftMs,
            SloTpotMs = request.SloTpotMs,
            Replicas = request.Replicas,
            MaxNumSeqs = request.MaxNumSeqs,
        };
        if (request.Workload is { } w)
        {
            if (request.ArrivalMs is not null || request.InputLengths is not null || request.OutputLengths is not null)
            {
                throw LensException.Validation("workload", "give either a trace or a workload, not both");
            }

            return shared with
            {
                RequestsPerSecond = w.RequestsPerSecond,
                Burstiness = w.Burstiness,
                Count = w.Count,
                Seed = w.Seed,
                InputDist = w.InputDist,
                OutputDist = w.OutputDist,
            };
        }

        if (request.ArrivalMs is not { } arrivals || request.InputLengths is not { } inputs || request.OutputLengths is not { } outputs)
        {
            throw LensException.Validation("arrivalMs", "a trace needs arrivalMs, inputLengths and outputLengths (or give a workload)");
        }

        if (arrivals.Length != inputs.Length || inputs.Length != outputs.Length || inputs.Length == 0)
        {
            throw LensException.Validation("inputLengths",
                $"{arrivals.Length} arrivals, {inputs.Length} input and {outputs.Length} output lengths; give one of each per request, at least one");
        }

        var trace = new TraceRequest[inputs.Length];
        for (var n = 0; n < trace.Length; n++)
        {
            trace[n] = new TraceRequest(arrivals[n], inputs[n], outputs[n]);
        }

        return shared with { Trace = trace };
    }

    /// <summary>The JSON field of each workload field.</summary>
    private static string FieldOf(WorkloadField field) => field switch
    {
        WorkloadField.Trace => "inputLengths",
        WorkloadField.Rate => "workload.requestsPerSecond",
        WorkloadField.Burstiness => "workload.burstiness",
        WorkloadField.Count => "workload.count",
        WorkloadField.InputDist => "workload.inputDist",
        WorkloadField.OutputDist => "workload.outputDist",
        WorkloadField.MaxOutput => "workload.maxOutput",
        WorkloadField.SloTtft => "sloTtftMs",
        WorkloadField.SloTpot => "sloTpotMs",
        WorkloadField.Replicas => "replicas",
        WorkloadField.MaxNumSeqs => "maxNumSeqs",
        _ => field.ToString(),
    };

    private static LatencySummary Summary(LatencyPercentiles p) => new(Value(p.P50), Value(p.P90), Value(p.P99), Value(p.Max));

    private static double? Value(double v) => double.IsNaN(v) ? null : v;
}
