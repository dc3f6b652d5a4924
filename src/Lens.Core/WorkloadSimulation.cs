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
    double? SloAttainment);

/// <summary>
/// Simulates serving a trace on a deployment whose device runs one request at a time (compiled batch size 1, as the profile
/// measured): requests queue first-come first-served and each goes to the replica that frees up first. A request's service time
/// is the model's predicted E2E; the user sees queue wait + predicted TTFT, and the predicted TPOT (method.md, "Beyond the paper", 5).
/// </summary>
public static class WorkloadSimulation
{
    public static SimulationResult Run(DeploymentModel model, IReadOnlyList<TraceRequest> trace, int replicas = 1, ServiceObjectives? slo = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(trace);
        if (replicas < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(replicas), replicas, "at least one replica is needed");
        }

        if (trace.Count == 0)
        {
            throw new ArgumentException("the trace is empty");
        }

        var ordered = trace.Select((r, n) => (r, n)).OrderBy(t => t.r.ArrivalMs).ThenBy(t => t.n).Select(t => t.r).ToArray();
        var free = new PriorityQueue<int, double>();
        for (var k = 0; k < replicas; k++)
        {
            free.Enqueue(k, ordered[0].ArrivalMs);
        }

        var ttft = new double[ordered.Length];
        var tpot = new double[ordered.Length];
        var e2e = new double[ordered.Length];
        var wait = new double[ordered.Length];
        double busy = 0, lastFinish = 0;
        long outputTokens = 0;
        var met = 0;
        for (var n = 0; n < ordered.Length; n++)
        {
            var r = ordered[n];
            var p = model.Predict(r.InputLength, r.OutputLength);
            free.TryDequeue(out var replica, out var freeAt);
            var start = Math.Max(r.ArrivalMs, freeAt);
            var finish = start + p.E2eMs;
            free.Enqueue(replica, finish);
            wait[n] = start - r.ArrivalMs;
            ttft[n] = wait[n] + p.TtftMs;
            e2e[n] = finish - r.ArrivalMs;
            tpot[n] = p.TpotMs;
            busy += p.E2eMs;
            lastFinish = Math.Max(lastFinish, finish);
            outputTokens += r.OutputLength;
            if (slo is not null && ttft[n] <= slo.TtftMs && (double.IsNaN(tpot[n]) || tpot[n] <= slo.TpotMs))
            {
                met++;
            }
        }

        var span = Math.Max(lastFinish - ordered[0].ArrivalMs, double.Epsilon) / 1000;
        return new SimulationResult(ordered.Length, replicas, LatencyPercentiles.Of(ttft), LatencyPercentiles.Of(tpot), LatencyPercentiles.Of(e2e),
            LatencyPercentiles.Of(wait), ordered.Length / span, outputTokens / span, busy / 1000 / span / replicas,
            slo is null ? null : (double)met / ordered.Length);
    }

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
