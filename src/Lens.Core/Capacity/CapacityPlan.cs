namespace Lens.Core;

/// <summary>
/// A per-request service-level objective and the share of requests that must meet it: a request meets it when its TTFT is at most
/// <see cref="TtftMs"/> and its TPOT at most <see cref="TpotMs"/> (a request with one output token on TTFT alone); a fleet meets it
/// when at least <see cref="Attainment"/> of the requests do.
/// </summary>
public sealed record CapacitySlo(double TtftMs, double TpotMs, double Attainment = 0.9)
{
    public const double MaxMs = 3_600_000;

    public ServiceObjectives Objectives => new(TtftMs, TpotMs);

    /// <summary>The first problem, naming the field and its allowed range, or null.</summary>
    public string? Check() =>
        !(TtftMs > 0 && TtftMs <= MaxMs) ? $"sloTtftMs must be in (0, {MaxMs}]; got {TtftMs}"
        : !(TpotMs > 0 && TpotMs <= MaxMs) ? $"sloTpotMs must be in (0, {MaxMs}]; got {TpotMs}"
        : !(Attainment > 0 && Attainment <= 1) ? $"attainment must be in (0, 1]; got {Attainment}"
        : null;
}

/// <summary>One deployment a capacity plan may buy replicas of; its chips per replica and price come from its
/// <see cref="DeploymentModel.Layout"/>.</summary>
/// <param name="Name">How the plan names it (a file name, a deployment id).</param>
/// <param name="MaxNumSeqs">Sequences in flight per replica; null: the largest batch bucket.</param>
public sealed record CapacityCandidate(string Name, DeploymentModel Model, int? MaxNumSeqs = null);

/// <summary>How a capacity plan searches.</summary>
/// <param name="Routing">How the fleet routes requests to its replicas.</param>
/// <param name="MaxReplicas">The most replicas of one candidate the plan considers (1..<see cref="CapacityPlanner.ReplicaLimit"/>).</param>
/// <param name="Headroom">Whether to find the largest rate each chosen fleet still meets (about 8 more simulations per candidate).</param>
public sealed record CapacityOptions(FleetRouting Routing = FleetRouting.Shared, int MaxReplicas = 64, bool Headroom = true);

/// <summary>
/// One candidate of a capacity plan: the fewest replicas that meet the SLO at the workload's rate (or, when <see cref="Meets"/> is
/// false, the figures at <see cref="CapacityOptions.MaxReplicas"/> and the <see cref="Reason"/>), what they cost and how they serve.
/// </summary>
/// <param name="Chips">Chips of the whole fleet: <c>replicas x chipsPerReplica</c>.</param>
/// <param name="CostPerHour"><c>chips x pricePerChipHour</c>; null without a price.</param>
/// <param name="CostPerMillionOutputTokens"><c>costPerHour / (output tokens per second x 3600) x 10^6</c> at the served rate; null without a price.</param>
/// <param name="Attainment">Share of the requests that met the SLO.</param>
/// <param name="Utilization">Share of the fleet's time spent on prefills and decode steps.</param>
/// <param name="HeadroomRequestsPerSecond">The largest rate (arrivals scaled in time) at which this fleet still meets the SLO; null
/// when not searched or when the candidate does not meet it.</param>
/// <param name="HeadroomIsLowerBound">True when the fleet still met the SLO at the largest scale searched (the headroom is at least that).</param>
/// <param name="Cheapest">The lowest cost per hour among the candidates that meet the SLO (fewest chips when a price is missing),
/// ties broken by p90 E2E.</param>
public sealed record CandidatePlan(
    string Model,
    bool Meets,
    string? Reason,
    int Replicas,
    int ChipsPerReplica,
    int Chips,
    string? DeviceKind,
    double? PricePerChipHour,
    double? CostPerHour,
    double? CostPerMillionOutputTokens,
    double Attainment,
    double TtftP50Ms,
    double TtftP90Ms,
    double TtftP99Ms,
    double TpotP50Ms,
    double TpotP90Ms,
    double TpotP99Ms,
    double E2eP50Ms,
    double E2eP90Ms,
    double E2eP99Ms,
    double Utilization,
    double RequestsPerSecond,
    double OutputTokensPerSecond,
    double? HeadroomRequestsPerSecond,
    bool HeadroomIsLowerBound,
    bool Cheapest);

/// <summary>A capacity plan: every candidate in the order given, the SLO, the routing and the workload's offered rate.</summary>
/// <param name="OfferedRequestsPerSecond">Requests over the span of their arrivals (NaN when all arrive at once).</param>
public sealed record CapacityPlan(IReadOnlyList<CandidatePlan> Candidates, CapacitySlo Slo, FleetRouting Routing, int Requests,
    double OfferedRequestsPerSecond)
{
    /// <summary>The candidate marked cheapest, or null when none meets the SLO.</summary>
    public CandidatePlan? Cheapest => Candidates.FirstOrDefault(c => c.Cheapest);
}

/// <summary>The largest rate a fleet meets the SLO at: arrivals scaled in time by <see cref="Scale"/> (rate x scale).</summary>
/// <param name="Scale">The largest scale found to meet (0 when even <see cref="CapacityPlanner.MinScale"/> does not).</param>
/// <param name="RequestsPerSecond">The workload's offered rate times <see cref="Scale"/> (NaN when the arrivals span no time).</param>
/// <param name="Attainment">Attainment at that scale.</param>
/// <param name="IsLowerBound">True when <see cref="CapacityPlanner.MaxScale"/> still met (the true limit is higher).</param>
public sealed record FleetRate(double Scale, double RequestsPerSecond, double Attainment, bool IsLowerBound);
