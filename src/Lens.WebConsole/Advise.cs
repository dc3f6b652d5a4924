using Lens.Abstractions;
using Lens.Core;
using Lens.WebConsole.Charts;

namespace Lens.WebConsole;

/// <summary>
/// The what-if page's advice inputs (issue 12): which profiled deployment, the bucket budget K, batch buckets to search and a target
/// rate to size replicas for. The workload and the SLO are the page's <see cref="WorkloadForm"/>.
/// </summary>
public sealed class AdviseForm
{
    public const int MaxBatchText = 200;

    public string Deployment { get; set; } = "";

    public int MaxBuckets { get; set; } = 4;

    public string? BatchBuckets { get; set; }

    public double? TargetRate { get; set; }

    /// <summary>
    /// The service's advise request for the page's workload on a deployment with <paramref name="buckets"/> (a Poisson workload is
    /// drawn over them, as the what-if run draws it), or null with what is wrong. The service checks the rest: lengths beyond what
    /// the profile supports, batch buckets above the profiled ones, the request count.
    /// </summary>
    public AdviseRequest? ToRequest(WorkloadForm workload, BucketSet buckets, CsvRows<TraceRequest>? trace, string traceName, out string? error)
    {
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(buckets);
        if (MaxBuckets is < 1 or > AdviceQuery.MaxBudget)
        {
            error = $"most buckets per kind (K) must be in 1..{AdviceQuery.MaxBudget}; got {MaxBuckets}";
            return null;
        }

        var batch = Batch(out error);
        if (error is not null)
        {
            return null;
        }

        var slo = workload.Slo(out error);
        if (error is not null)
        {
            return null;
        }

        if (TargetRate is { } rate && (!(rate > 0) || !double.IsFinite(rate)))
        {
            error = $"the target rate must be a positive number of requests/s; got {rate}";
            return null;
        }

        if (TargetRate is not null && slo is null)
        {
            error = "sizing replicas for a target rate needs the SLO: give TTFT and TPOT";
            return null;
        }

        if (workload.Requests(buckets, trace, traceName, out error) is not { } requests)
        {
            return null;
        }

        return new AdviseRequest([.. requests.Select(r => r.ArrivalMs)], [.. requests.Select(r => r.InputLength)],
            [.. requests.Select(r => r.OutputLength)], SloTtftMs: slo?.TtftMs, SloTpotMs: slo?.TpotMs, MaxBuckets: MaxBuckets,
            BatchBuckets: batch, TargetRate: TargetRate);
    }

    /// <summary>The batch buckets typed (null when the box is empty: the advisor's default), checked as a bucket list.</summary>
    private int[]? Batch(out string? error)
    {
        error = null;
        if (string.IsNullOrWhiteSpace(BatchBuckets))
        {
            return null;
        }

        if (BatchBuckets.Length > MaxBatchText)
        {
            error = $"batch buckets: at most {MaxBatchText} characters; got {BatchBuckets.Length}";
            return null;
        }

        try
        {
            var edges = BucketSet.ParseEdges(BatchBuckets, "batch");
            return [.. new BucketSet([1], [1], batch: edges).Batch]; // positive, ascending, distinct
        }
        catch (BucketSetException ex)
        {
            error = $"batch buckets: {ex.Message}";
            return null;
        }
    }
}

/// <summary>How the what-if page shows an <see cref="Advice"/>: the table's rows and the Pareto chart.</summary>
public static class AdviceDisplay
{
    /// <summary>The table's rows: the current deployment (when scored), the frontier k = 1..K, the batch search, the recommendation last.</summary>
    public static IReadOnlyList<ScoredDeployment> Rows(Advice advice)
    {
        ArgumentNullException.ThrowIfNull(advice);
        return [.. advice.Scored, advice.Recommended];
    }

    /// <summary>Graphs compiled against predicted p90 E2E served, the frontier joined, the current deployment and the recommendation marked.</summary>
    public static string Pareto(Advice advice, string id = "chart-advice")
    {
        ArgumentNullException.ThrowIfNull(advice);
        // By which list a row comes from, not its name: batch-search rows are named after their budget too ("k=2 B=1,2").
        var frontier = advice.Frontier.ToHashSet(ReferenceEqualityComparer.Instance);
        string KindOf(ScoredDeployment s) => ReferenceEquals(s, advice.Current) ? "current"
            : ReferenceEquals(s, advice.Recommended) ? "recommended"
            : frontier.Contains(s) ? "frontier"
            : "batch";

        return SvgChart.Scatter(id, "Buckets compiled against predicted p90 E2E (served, one replica)",
            "graphs compiled (prefill + decode x batch)", "p90 E2E (ms)",
            [.. Rows(advice).Select(s => new ChartPoint(s.BucketsCompiled, s.Serving.E2e.P90, s.Name, KindOf(s)))],
            [("frontier k = 1..K", "frontier"), ("batch buckets", "batch"), ("current", "current"), ("recommended", "recommended")],
            joined: "frontier");
    }
}
