using Lens.Abstractions;
using Lens.Core;

namespace Lens.WebConsole;

/// <summary>
/// The capacity page's question (issue 20): a generated workload, a per-request SLO and the share of requests that must meet it, the
/// fleet's routing and a price per chip-hour. The page sends it to the tenant's predictor grain as the body of <c>POST /v1/capacity</c>;
/// the grain generates, validates and bounds it, so the page has the service's limits and its error messages.
/// </summary>
public sealed class CapacityForm
{
    public const int MaxCandidates = 16;

    public double Rate { get; set; } = 5;

    public int Count { get; set; } = 1000;

    public string? InputDist { get; set; }

    public string? OutputDist { get; set; }

    public int Seed { get; set; }

    public double SloTtftMs { get; set; } = 500;

    public double SloTpotMs { get; set; } = 50;

    public double Attainment { get; set; } = 0.9;

    public string Routing { get; set; } = FleetRoutingNames.All[0];

    public int MaxReplicas { get; set; } = 64;

    public double? PricePerChipHour { get; set; }

    public bool Headroom { get; set; } = true;

    /// <summary>
    /// The request for <paramref name="candidates"/> (device, deployment, chips per replica). Lengths not given are drawn uniformly over
    /// what the candidate with the shortest sequences serves, and the draws clamped into every candidate's buckets (as the CLI does).
    /// </summary>
    public CapacityRequest ToRequest(IReadOnlyList<CapacityChoice> candidates)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        return new CapacityRequest([.. candidates.Select(c => new CapacityCandidateSpec(c.Info.Device, c.Info.Id, c.Chips))],
            SloTtftMs, SloTpotMs, Attainment,
            Workload: new WorkloadSpec(Rate, Count, InputDist: Given(InputDist), OutputDist: Given(OutputDist), Seed: Seed),
            Routing: Routing, MaxReplicas: MaxReplicas, PricePerChipHour: PricePerChipHour, Headroom: Headroom);
    }

    private static string? Given(string? text) => string.IsNullOrWhiteSpace(text) ? null : text.Trim();
}

/// <summary>A profiled deployment the capacity page may plan for, with its chips per replica (default 1).</summary>
public sealed class CapacityChoice(DeploymentInfo info)
{
    public DeploymentInfo Info { get; } = info;

    /// <summary>How the page and the plan name it: <c>device/deployment</c>.</summary>
    public string Name => $"{Info.Device}/{Info.Id}";

    public bool Selected { get; set; } = true;

    public int Chips { get; set; } = 1;
}
