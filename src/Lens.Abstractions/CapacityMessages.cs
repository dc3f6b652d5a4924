namespace Lens.Abstractions;

/// <summary>One deployment of the tenant a capacity plan may buy replicas of, with its layout: chips per replica (default 1), device
/// kind, and a price per chip-hour (else the request's, else the tenant's setting for the kind, else the tenant's default).</summary>
[GenerateSerializer, Immutable, Alias("lens.CapacityCandidateSpec.v1")]
public sealed record CapacityCandidateSpec(
    [property: Id(0)] string Device,
    [property: Id(1)] string Deployment,
    [property: Id(2)] int? Chips = null,
    [property: Id(3)] string? DeviceKind = null,
    [property: Id(4)] double? PricePerChipHour = null,
    [property: Id(5)] int? MaxNumSeqs = null);

/// <summary>
/// Capacity planning across the tenant's deployments (method.md, "Parallel layouts and cost"): for a trace (<see cref="ArrivalMs"/>,
/// <see cref="InputLengths"/>, <see cref="OutputLengths"/>) or a generated <see cref="Workload"/>, and a per-request SLO (TTFT and
/// TPOT limits, met by at least <see cref="Attainment"/> of the requests), the fewest replicas of each candidate that meet it, what
/// they cost, and the cheapest. <see cref="Routing"/> is <c>shared</c>, <c>round-robin</c> or <c>least-outstanding</c>.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.CapacityRequest.v1")]
public sealed record CapacityRequest(
    [property: Id(0)] CapacityCandidateSpec[]? Candidates,
    [property: Id(1)] double SloTtftMs,
    [property: Id(2)] double SloTpotMs,
    [property: Id(3)] double Attainment = 0.9,
    [property: Id(4)] double[]? ArrivalMs = null,
    [property: Id(5)] int[]? InputLengths = null,
    [property: Id(6)] int[]? OutputLengths = null,
    [property: Id(7)] WorkloadSpec? Workload = null,
    [property: Id(8)] string Routing = "shared",
    [property: Id(9)] int MaxReplicas = 64,
    [property: Id(10)] double? PricePerChipHour = null,
    [property: Id(11)] bool Headroom = true);

/// <summary>One candidate of a capacity plan (the fields of <c>lens capacity --out</c>), with its device and deployment.</summary>
[GenerateSerializer, Immutable, Alias("lens.CapacityCandidateReport.v1")]
public sealed record CapacityCandidateReport(
    [property: Id(0)] string Device,
    [property: Id(1)] string Deployment,
    [property: Id(2)] bool Meets,
    [property: Id(3)] string? Reason,
    [property: Id(4)] int Replicas,
    [property: Id(5)] int ChipsPerReplica,
    [property: Id(6)] int Chips,
    [property: Id(7)] string? DeviceKind,
    [property: Id(8)] double? PricePerChipHour,
    [property: Id(9)] double? CostPerHour,
    [property: Id(10)] double? CostPerMillionOutputTokens,
    [property: Id(11)] double Attainment,
    [property: Id(12)] double? TtftP50Ms,
    [property: Id(13)] double? TtftP90Ms,
    [property: Id(14)] double? TtftP99Ms,
    [property: Id(15)] double? TpotP50Ms,
    [property: Id(16)] double? TpotP90Ms,
    [property: Id(17)] double? TpotP99Ms,
    [property: Id(18)] double? E2eP50Ms,
    [property: Id(19)] double? E2eP90Ms,
    [property: Id(20)] double? E2eP99Ms,
    [property: Id(21)] double Utilization,
    [property: Id(22)] double? HeadroomRequestsPerSecond,
    [property: Id(23)] bool HeadroomIsLowerBound,
    [property: Id(24)] bool Cheapest);

/// <summary>A capacity plan: every candidate in the order asked, the workload's offered rate (null when all arrive at once).</summary>
[GenerateSerializer, Immutable, Alias("lens.CapacityReport.v1")]
public sealed record CapacityReport(
    [property: Id(0)] CapacityCandidateReport[] Candidates,
    [property: Id(1)] int Requests,
    [property: Id(2)] double? OfferedRequestsPerSecond,
    [property: Id(3)] string Routing,
    [property: Id(4)] string? Cheapest);
