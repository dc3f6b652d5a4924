namespace Lens.Core;

/// <summary>A workload and what the advisor may search (bounded: every count and candidate list is capped).</summary>
/// <param name="Trace">The workload: arrivals and lengths.</param>
/// <param name="MaxBuckets">Budget: at most this many prefill buckets and this many decode buckets.</param>
/// <param name="Slo">Service-level objectives for goodput and replicas (null: throughput is the serving objective).</param>
/// <param name="BatchBuckets">Batch buckets to search prefixes of (null: powers of two up to the profiled largest).</param>
/// <param name="TargetRate">Requests per second to size replicas for (null: no replica count).</param>
/// <param name="Goal">SLO attainment the replica count must reach.</param>
/// <param name="Granularity">Candidate edges are needed lengths rounded up to a multiple of this (doubled until within the cap).</param>
public sealed record AdviceQuery(
    IReadOnlyList<TraceRequest> Trace,
    int MaxBuckets = 4,
    ServiceObjectives? Slo = null,
    IReadOnlyList<int>? BatchBuckets = null,
    double? TargetRate = null,
    double Goal = 0.99,
    int Granularity = 16)
{
    public const int MaxBudget = 32;
    public const int MaxCandidates = 512;
    public const int MaxReplicas = 1024;
}

/// <summary>One deployment the advisor scored: its buckets, how many graphs it compiles, and its predicted latencies.</summary>
/// <param name="Name">current, recommended, or what it is (e.g. k=2).</param>
/// <param name="Prefill">Prefill edges.</param>
/// <param name="Decode">Decode edges.</param>
/// <param name="Batch">Batch buckets.</param>
/// <param name="BucketsCompiled">Graphs to compile: prefill buckets + decode buckets x batch buckets.</param>
/// <param name="MeanE2eMs">Mean predicted E2E of the workload's requests run one at a time.</param>
/// <param name="Serving">The workload served at its own arrival times on one replica (continuous batching).</param>
public sealed record ScoredDeployment(string Name, int[] Prefill, int[] Decode, int[] Batch, int BucketsCompiled, double MeanE2eMs,
    SimulationResult Serving)
{
    /// <summary>
    /// The workload overloads it: its replica was busy for longer than the arrivals span, so the queue grows through the trace and
    /// <see cref="Serving"/>'s latencies grow with the trace's length (the advice's table and plot mark it).
    /// </summary>
    public bool Overloaded { get; init; }
}

/// <summary>The replicas needed for a target rate at the SLO.</summary>
public sealed record ReplicaAdvice(double TargetRate, double Goal, int? Replicas, double? Attainment, string? Reason);

/// <summary>Everything <c>lens advise</c> recommends, with the numbers behind it.</summary>
/// <param name="Current">The profiled deployment's own buckets on the workload, requests longer than them clamped into them (see
/// <see cref="CurrentClampNote"/>); null when its model is incomplete (<paramref name="CurrentReason"/>).</param>
/// <param name="Recommended">The best edges under the budget (and the best batch buckets, when the deployment batches).</param>
/// <param name="Frontier">The best edges for each budget 1..K: buckets compiled against p90 E2E and goodput.</param>
/// <param name="BatchSearch">Each budget's edges with each prefix of the batch list, served (empty when the deployment does not batch).</param>
public sealed record Advice(
    int Requests,
    double RequestsPerSecond,
    ServiceObjectives? Slo,
    ScoredDeployment? Current,
    string? CurrentReason,
    ScoredDeployment Recommended,
    IReadOnlyList<ScoredDeployment> Frontier,
    IReadOnlyList<ScoredDeployment> BatchSearch,
    ReplicaAdvice? Replicas,
    CurveSummary PrefillCurve,
    CurveSummary DecodeCurve,
    int Granularity)
{
    /// <summary>How many of the workload's requests the current deployment served clamped into its buckets (null when none was).</summary>
    public string? CurrentClampNote { get; init; }

    /// <summary>Every deployment scored: the current one (when scored), the frontier, then the batch search.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IEnumerable<ScoredDeployment> Scored =>
        (Current is null ? Enumerable.Empty<ScoredDeployment>() : [Current]).Concat(Frontier).Concat(BatchSearch);
}
