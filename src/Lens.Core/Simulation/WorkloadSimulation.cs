namespace Lens.Core;

/// <summary>One request of a workload trace: when it arrives (ms from the trace's start) and its lengths.</summary>
public readonly record struct TraceRequest(double ArrivalMs, int InputLength, int OutputLength);

/// <summary>Service-level objectives a request meets when both its TTFT and its TPOT are within them.</summary>
public sealed record ServiceObjectives(double TtftMs, double TpotMs);

/// <summary>Percentiles of one latency (ms) over the requests of a simulation.</summary>
public readonly record struct LatencyPercentiles(double P50, double P90, double P99, double Max)
{
    public static LatencyPercentiles Of(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        return sorted.Length == 0
            ? new LatencyPercentiles(double.NaN, double.NaN, double.NaN, double.NaN)
            : new LatencyPercentiles(RepeatStatistic.QuantileOfSorted(sorted, 0.5), RepeatStatistic.QuantileOfSorted(sorted, 0.9),
                RepeatStatistic.QuantileOfSorted(sorted, 0.99), sorted[^1]);
    }
}

/// <summary>What a deployment does with a trace: latencies seen by users (queueing included), throughput, SLO attainment.</summary>
public sealed record SimulationResult(
    int Requests,
    int Replicas,
    LatencyPercentiles Ttft,
    LatencyPercentiles Tpot,
    LatencyPercentiles E2e,
    LatencyPercentiles QueueWait,
    double RequestsPerSecond,
    double OutputTokensPerSecond,
    double Utilization,
    double? SloAttainment)
{
    /// <summary>Sequences in flight at most per replica.</summary>
    public int MaxNumSeqs { get; init; } = 1;

    /// <summary>Requests per second that met the objectives (null without objectives).</summary>
    public double? GoodputPerSecond { get; init; }

    /// <summary>Decode steps simulated.</summary>
    public long DecodeSteps { get; init; }
}

/// <summary>
/// Serving a trace on a deployment (method.md, "Beyond the paper", 5, and "Batched serving"): the continuous-batching scheduler of
/// <see cref="ServingSimulation"/>, with at most <c>max_num_seqs</c> sequences in flight per replica (the largest batch bucket by
/// default; a deployment with batch buckets <c>[1]</c> runs one request at a time) and one first-come first-served queue shared by
/// the replicas. Also generates traces.
/// </summary>
public static class WorkloadSimulation
{
    public static SimulationResult Run(DeploymentModel model, IReadOnlyList<TraceRequest> trace, int replicas = 1, ServiceObjectives? slo = null,
        int? maxNumSeqs = null) =>
        ServingSimulation.Simulate(model, trace, maxNumSeqs, replicas).Summarize(slo);

    /// <summary>The first request of <paramref name="trace"/> that the buckets cannot serve, with the reason, or null when all fit.</summary>
    public static (int Index, string Reason)? FirstOutOfRange(BucketSet buckets, IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(trace);
        for (var n = 0; n < trace.Count; n++)
        {
            if (buckets.CheckRequest(trace[n].InputLength, trace[n].OutputLength) is { } reason)
            {
                return (n, reason);
            }
        }

        return null;
    }

    /// <summary>A Poisson arrival trace with lengths drawn uniformly over what the buckets serve (capped by <paramref name="maxOutput"/>).</summary>
    public static IReadOnlyList<TraceRequest> PoissonTrace(BucketSet buckets, double requestsPerSecond, int count, int seed, int? maxOutput = null)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        if (!(requestsPerSecond > 0) || count < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(requestsPerSecond), "the rate must be positive and the count at least 1");
        }

        var rng = new Random(seed);
        var maxInput = Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1);
        var trace = new TraceRequest[count];
        var t = 0.0;
        for (var n = 0; n < count; n++)
        {
            t += -Math.Log(1 - rng.NextDouble()) / requestsPerSecond * 1000;
            var i = rng.Next(1, maxInput + 1);
            var o = rng.Next(1, Math.Min(buckets.MaxSequence - i, maxOutput ?? int.MaxValue) + 1);
            trace[n] = new TraceRequest(t, i, o);
        }

        return trace;
    }
}
