using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>Turns a <see cref="SimulateRequest"/> into a core trace (validated, bounded) and a run into its report.</summary>
internal static class ServingWorkloads
{
    public const int MaxReplicas = 10_000;

    public static IReadOnlyList<TraceRequest> Trace(BucketSet buckets, SimulateRequest? request, int maxRequests)
    {
        if (request is null)
        {
            throw LensException.Validation("request", "a trace (arrivalMs, inputLengths, outputLengths) or a workload is required");
        }

        if (request.Replicas is < 1 or > MaxReplicas)
        {
            throw LensException.Validation("replicas", $"replicas must be in 1..{MaxReplicas}; got {request.Replicas}");
        }

        if (request.MaxNumSeqs is { } seqs && (seqs < 1 || seqs > buckets.MaxBatch))
        {
            throw LensException.Validation("maxNumSeqs", $"maxNumSeqs must be in 1..{buckets.MaxBatch} (the largest batch bucket); got {seqs}");
        }

        if ((request.SloTtftMs is null) != (request.SloTpotMs is null) || request.SloTtftMs is <= 0 || request.SloTpotMs is <= 0)
        {
            throw LensException.Validation("sloTtftMs", "give sloTtftMs and sloTpotMs together, both positive");
        }

        if (request.Workload is { } w)
        {
            if (request.ArrivalMs is not null || request.InputLengths is not null || request.OutputLengths is not null)
            {
                throw LensException.Validation("workload", "give either a trace or a workload, not both");
            }

            if (w.Count < 1 || w.Count > maxRequests)
            {
                throw LensException.Validation("workload.count", $"count must be in 1..{maxRequests}; got {w.Count}");
            }

            try
            {
                return TraceGenerator.Generate(buckets, new ArrivalProcess(w.RequestsPerSecond, w.Burstiness), w.InputDist, "workload.inputDist",
                    w.OutputDist, "workload.outputDist", w.Count, w.Seed, out _);
            }
            catch (ArgumentException ex)
            {
                throw LensException.Validation("workload", ex.Message);
            }
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

        if (inputs.Length > maxRequests)
        {
            throw LensException.Validation("inputLengths", $"{inputs.Length} requests; at most {maxRequests} are simulated at once");
        }

        var trace = new TraceRequest[inputs.Length];
        for (var n = 0; n < trace.Length; n++)
        {
            trace[n] = new TraceRequest(arrivals[n], inputs[n], outputs[n]);
        }

        return trace;
    }

    public static SimulationReport Report(ServingRun run, SimulateRequest request, long modelVersion)
    {
        var slo = request.SloTtftMs is { } t ? new ServiceObjectives(t, request.SloTpotMs!.Value) : null;
        var r = run.Summarize(slo);
        return new SimulationReport(r.Requests, r.Replicas, r.MaxNumSeqs, Summary(r.Ttft), Summary(r.Tpot), Summary(r.E2e), Summary(r.QueueWait),
            r.RequestsPerSecond, r.OutputTokensPerSecond, r.Utilization, r.SloAttainment, r.GoodputPerSecond, r.DecodeSteps, modelVersion,
            request.IncludeRequests ? [.. run.Requests.Select(s => s.TtftMs)] : null,
            request.IncludeRequests ? [.. run.Requests.Select(s => s.E2eMs)] : null,
            request.IncludeRequests ? [.. run.Requests.Select(s => double.IsNaN(s.TpotMs) ? (double?)null : s.TpotMs)] : null);
    }

    private static LatencySummary Summary(LatencyPercentiles p) => new(Value(p.P50), Value(p.P90), Value(p.P99), Value(p.Max));

    private static double? Value(double v) => double.IsNaN(v) ? null : v;
}
