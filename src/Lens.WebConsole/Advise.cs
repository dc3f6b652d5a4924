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
    /// The service's advise request (the body of <c>POST .../advise</c>) for the page's workload and SLO, lengths drawn over the
    /// advised deployment's buckets <paramref name="lengthsFrom"/> as the what-if run draws them; null with what is wrong when the
    /// batch list cannot be read. The predictor grain checks the rest (K, the target rate and its SLO, the request count, lengths
    /// beyond what the profile supports) and its refusal is shown.
    /// </summary>
    public AdviseRequest? ToRequest(WorkloadForm workload, DeploymentSpec lengthsFrom, CsvRows<TraceRequest>? trace, out string? error)
    {
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(lengthsFrom);
        var batch = Batch(out error);
        if (error is not null)
        {
            return null;
        }

        var (arrivals, inputs, outputs) = WorkloadForm.Columns(trace);
        return new AdviseRequest(arrivals, inputs, outputs, trace is null ? workload.Workload(lengthsFrom) : null, workload.SloTtftMs,
            workload.SloTpotMs, MaxBuckets, batch, TargetRate);
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
