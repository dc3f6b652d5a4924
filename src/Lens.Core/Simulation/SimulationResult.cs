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
