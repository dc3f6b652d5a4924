using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>Turns a <see cref="CapacityRequest"/> into a bounded core capacity plan and the plan into its report.</summary>
internal static class CapacityPlanning
{
    /// <summary>Most candidates, requests and replicas one call may ask for: the plan simulates each candidate's whole workload
    /// about 15 times.</summary>
    public const int MaxCandidates = 16, MaxRequests = 100_000, MaxReplicas = 256;

    /// <summary>Checks everything that does not need the models; returns each candidate's deployment key.</summary>
    public static string[] Validate(string tenant, CapacityRequest? request)
    {
        if (request?.Candidates is not { Length: > 0 } candidates)
        {
            throw LensException.Validation("candidates", $"give 1..{MaxCandidates} candidates (device and deployment)");
        }

        if (candidates.Length > MaxCandidates)
        {
            throw LensException.Validation("candidates", $"{candidates.Length} candidates; at most {MaxCandidates} are allowed");
        }

        if (new CapacitySlo(request.SloTtftMs, request.SloTpotMs, request.Attainment).Check() is { } problem)
        {
            throw LensException.Validation(problem.Split(' ')[0], problem);
        }

        if (request.MaxReplicas is < 1 or > MaxReplicas)
        {
            throw LensException.Validation("maxReplicas", $"maxReplicas must be in 1..{MaxReplicas}; got {request.MaxReplicas}");
        }

        _ = Routing(request.Routing);
        if (request.PricePerChipHour is { } price && !(price >= 0 && price <= DeploymentLayout.MaxPrice))
        {
            throw LensException.Validation("pricePerChipHour", $"pricePerChipHour must be in 0..{DeploymentLayout.MaxPrice}; got {price}");
        }

        return [.. candidates.Select((c, k) =>
        {
            if (c is null)
            {
                throw LensException.Validation($"candidates[{k}]", "a candidate needs a device and a deployment");
            }

            if (Layout(c, request.PricePerChipHour).Check() is { } bad)
            {
                throw LensException.Validation($"candidates[{k}]", bad);
            }

            if (c.MaxNumSeqs is < 1)
            {
                throw LensException.Validation($"candidates[{k}].maxNumSeqs", $"maxNumSeqs must be at least 1; got {c.MaxNumSeqs}");
            }

            return new DeviceKey(tenant, c.Device).Deployment(c.Deployment).Format();
        })];
    }

    /// <summary>Plans the validated request on the candidates' models (in the request's order).</summary>
    public static CapacityReport Plan(CapacityRequest request, IReadOnlyList<DeploymentModel> models)
    {
        var specs = request.Candidates!;
        var candidates = specs.Select((c, k) =>
        {
            if (c.MaxNumSeqs > models[k].MaxNumSeqs)
            {
                throw LensException.Validation($"candidates[{k}].maxNumSeqs",
                    $"maxNumSeqs must be in 1..{models[k].MaxNumSeqs} (the deployment's max_num_seqs under its policy); got {c.MaxNumSeqs}");
            }

            return new CapacityCandidate($"{c.Device}/{c.Deployment}", models[k].WithLayout(Layout(c, request.PricePerChipHour)), c.MaxNumSeqs);
        }).ToArray();

        // The trace the CLI plans on for the same workload: a generated one clamped into every candidate's buckets.
        var buckets = models.Select(m => m.Buckets).ToArray();
        var workload = ServingWorkloads.Validated(buckets.MinBy(b => (b.MaxSequence, b.MaxPrompt))!,
            new SimulateRequest(request.ArrivalMs, request.InputLengths, request.OutputLengths, request.Workload), MaxRequests);
        var trace = CapacityPlanner.Trace(workload, models).Requests;
        for (var k = 0; k < candidates.Length; k++)
        {
            if (Workload.FirstOutOfRange(candidates[k].Model, trace) is { } bad)
            {
                throw LensException.Validation("inputLengths", $"request {bad.Index}: {bad.Reason} (candidates[{k}])");
            }
        }

        var plan = CapacityPlanner.Plan(candidates, trace, new CapacitySlo(request.SloTtftMs, request.SloTpotMs, request.Attainment),
            new CapacityOptions(Routing(request.Routing), request.MaxReplicas, request.Headroom));
        var reports = plan.Candidates.Select((c, k) => new CapacityCandidateReport(specs[k].Device, specs[k].Deployment, c.Meets, c.Reason,
            c.Replicas, c.ChipsPerReplica, c.Chips, c.DeviceKind, c.PricePerChipHour, c.CostPerHour, c.CostPerMillionOutputTokens, c.Attainment,
            N(c.TtftP50Ms), N(c.TtftP90Ms), N(c.TtftP99Ms), N(c.TpotP50Ms), N(c.TpotP90Ms), N(c.TpotP99Ms), N(c.E2eP50Ms), N(c.E2eP90Ms),
            N(c.E2eP99Ms), c.Utilization, c.HeadroomRequestsPerSecond is { } h && double.IsFinite(h) ? h : null, c.HeadroomIsLowerBound,
            c.Cheapest)).ToArray();
        return new CapacityReport(reports, plan.Requests, N(plan.OfferedRequestsPerSecond), request.Routing,
            reports.FirstOrDefault(r => r.Cheapest) is { } best ? $"{best.Device}/{best.Deployment}" : null);
    }

    private static DeploymentLayout Layout(CapacityCandidateSpec c, double? price) =>
        new(c.Chips ?? 1, c.DeviceKind, c.PricePerChipHour ?? price);

    private static FleetRouting Routing(string? routing) => FleetRoutingNames.Parse(routing) ??
        throw LensException.Validation("routing", $"routing must be shared, round-robin or least-outstanding; got '{routing}'");

    private static double? N(double v) => double.IsFinite(v) ? v : null;
}
