using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// The predictor's what-if and advice calls (issue 12): validate the request, call the core (<see cref="WhatIfModels"/>,
/// <see cref="Advisor"/>), answer JSON documents. Bounded: the workload by <see cref="LensGrainOptions.MaxAdviseRequests"/>, the
/// search by the core's caps (budget, candidate edges, replicas).
/// </summary>
internal static class WhatIfAdvice
{
    public static string WhatIf(DeploymentModel model, WhatIfRequest? request, string source)
    {
        if (request?.PrefillBuckets is not { } prefill || request.DecodeBuckets is not { } decode)
        {
            throw LensException.Validation("prefillBuckets", "prefillBuckets and decodeBuckets are required (ascending positive lengths)");
        }

        var costs = CostsOf(model);
        BucketSet buckets;
        try
        {
            buckets = new BucketSet(prefill, decode, model.Buckets.Convention, request.BatchBuckets ?? [.. model.Buckets.Batch]);
        }
        catch (BucketSetException ex)
        {
            throw LensException.Validation("buckets", ex.Message);
        }

        try
        {
            return ModelJson.Serialize(WhatIfModels.Predict(costs, buckets), WhatIfModels.Describe(costs, buckets, source));
        }
        catch (WhatIfRangeException ex)
        {
            throw LensException.Validation(FieldOf(ex), ex.Message);
        }
    }

    public static string Advise(DeploymentModel model, AdviseRequest? request, int maxRequests, string source)
    {
        if (request is null)
        {
            throw LensException.Validation("request", "a trace (arrivalMs, inputLengths, outputLengths) or a workload is required");
        }

        var costs = CostsOf(model);
        // The same workload as simulate's, generated into what the cost curves can plan for (Advisor.Supported).
        var (workload, trace) = ServingWorkloads.Trace(Advisor.Supported(costs), new SimulateRequest(request.ArrivalMs, request.InputLengths,
            request.OutputLengths, request.Workload, SloTtftMs: request.SloTtftMs, SloTpotMs: request.SloTpotMs), maxRequests);
        if (Advisor.FirstUnsupported(costs, trace) is { } bad)
        {
            throw LensException.Validation("inputLengths", $"request #{bad.Index + 1}: {bad.Reason}");
        }

        try
        {
            var advice = Advisor.Advise(costs, new AdviceQuery(trace, request.MaxBuckets, workload.Slo, request.BatchBuckets, request.TargetRate,
                request.Goal, request.Granularity));
            return AdviceJson.Serialize(advice, source, model.Buckets);
        }
        catch (WhatIfRangeException ex)
        {
            throw LensException.Validation(FieldOf(ex), ex.Message);
        }
        catch (ArgumentException ex) when (ex is not RequestOutOfRangeException)
        {
            // Budget, granularity, goal, rate, batch list: the core names the value and its range.
            throw LensException.Validation("advise", ex.Message);
        }
    }

    private static BucketCostModel CostsOf(DeploymentModel model)
    {
        if (!model.Policy.IsDefault)
        {
            // The cost curves and the advisor's search plan prefill-first padded bucket sets (Core's Advice).
            throw LensException.Conflict($"what-if and advice plan prefill-first padded bucket sets; this deployment runs {model.Policy.Name}");
        }

        try
        {
            return new BucketCostModel(model);
        }
        catch (ArgumentException ex)
        {
            throw LensException.Conflict($"the deployment's profile cannot give cost curves yet: {ex.Message}");
        }
    }

    private static string FieldOf(WhatIfRangeException ex) =>
        ex.IsBatch ? "batchBuckets" : ex.Kind == BucketKind.Prefill ? "prefillBuckets" : "decodeBuckets";
}
