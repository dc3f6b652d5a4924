namespace Lens.Core;

/// <summary>One served request as a user sees it, measured or simulated: times in ms from its (scheduled) arrival.</summary>
public readonly record struct ServedLatency(double ArrivalMs, int OutputLength, double TtftMs, double E2eMs)
{
    /// <summary><c>(E2E - TTFT) / (O - 1)</c>; NaN when <c>O = 1</c>.</summary>
    public double TpotMs => OutputLength > 1 ? (E2eMs - TtftMs) / (OutputLength - 1) : double.NaN;
}

/// <summary>
/// The figures a serving comparison judges: p50 and p90 of TTFT, TPOT and E2E, and throughput in requests and output tokens per
/// second over the span from the first arrival to the last completion (the same span for measured and simulated runs).
/// </summary>
public sealed record ServingFigures(int Requests, LatencyPercentiles Ttft, LatencyPercentiles Tpot, LatencyPercentiles E2e,
    double RequestsPerSecond, double OutputTokensPerSecond)
{
    public static ServingFigures Of(IReadOnlyList<ServedLatency> requests)
    {
        ArgumentNullException.ThrowIfNull(requests);
        double first = double.MaxValue, last = double.MinValue;
        long tokens = 0;
        foreach (var r in requests)
        {
            first = Math.Min(first, r.ArrivalMs);
            last = Math.Max(last, r.ArrivalMs + r.E2eMs);
            tokens += r.OutputLength;
        }

        var seconds = requests.Count == 0 ? double.NaN : Math.Max(last - first, double.Epsilon) / 1000;
        return new ServingFigures(requests.Count, LatencyPercentiles.Of(requests.Select(r => r.TtftMs)),
            LatencyPercentiles.Of(requests.Select(r => r.TpotMs)), LatencyPercentiles.Of(requests.Select(r => r.E2eMs)),
            requests.Count / seconds, tokens / seconds);
    }

    /// <summary>A simulated run's requests, in the trace's order.</summary>
    public static ServingFigures Of(ServingRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        return Of([.. run.Requests.Select(r => new ServedLatency(r.ArrivalMs, r.OutputLength, r.TtftMs, r.E2eMs))]);
    }

    /// <summary>The judged figures by name, in a fixed order.</summary>
    public IReadOnlyList<(string Name, double Value)> Named() =>
    [
        ("TTFT p50 (ms)", Ttft.P50), ("TTFT p90 (ms)", Ttft.P90), ("TPOT p50 (ms)", Tpot.P50), ("TPOT p90 (ms)", Tpot.P90),
        ("E2E p50 (ms)", E2e.P50), ("E2E p90 (ms)", E2e.P90), ("requests/s", RequestsPerSecond), ("output tokens/s", OutputTokensPerSecond),
    ];
}

/// <summary>
/// One figure of one load: measured (first replay), its twin (the second replay of the same trace) and predicted.
/// <see cref="NoiseFloor"/> is <c>|twin - measured| / measured</c>; the figure is met when <c>|predicted - measured| / measured</c>
/// is at most <c>max(MinGoal, 2 x noise floor)</c>, <see cref="MinGoal"/> being the load's (<see cref="MinGoalAt"/>: issue 18's
/// "Done when", stricter than issue 14's 15%).
/// </summary>
public sealed record FigureComparison(string Figure, double Measured, double Twin, double Predicted, double MinGoal = FigureComparison.MinGoalLight)
{
    /// <summary>The least goal up to 60% of the sustainable rate.</summary>
    public const double MinGoalLight = 0.05;

    /// <summary>The least goal above 60% (queues make every figure more sensitive to each cost).</summary>
    public const double MinGoalHeavy = 0.10;

    public const double NoiseFactor = 2;

    /// <summary>The least goal at <paramref name="load"/> (a fraction of the sustainable rate).</summary>
    public static double MinGoalAt(double load) => load <= 0.6 + 1e-9 ? MinGoalLight : MinGoalHeavy;

    public double NoiseFloor => Math.Abs(Twin - Measured) / Measured;

    public double Error => Math.Abs(Predicted - Measured) / Measured;

    public double Goal => Math.Max(MinGoal, NoiseFactor * NoiseFloor);

    public bool Met => Error <= Goal;
}

/// <summary>Measured against predicted serving figures, and the sustainable rate a fitted deployment offers a workload mix.</summary>
public static class ServingComparison
{
    public static IReadOnlyList<FigureComparison> Compare(ServingFigures measured, ServingFigures twin, ServingFigures predicted,
        double minGoal = FigureComparison.MinGoalLight)
    {
        ArgumentNullException.ThrowIfNull(measured);
        ArgumentNullException.ThrowIfNull(twin);
        ArgumentNullException.ThrowIfNull(predicted);
        var (m, t, p) = (measured.Named(), twin.Named(), predicted.Named());
        return [.. m.Select((f, k) => new FigureComparison(f.Name, f.Value, t[k].Value, p[k].Value, minGoal))];
    }

    /// <summary>
    /// The largest request rate one replica sustains for the mix of <paramref name="mix"/> (its lengths; arrivals are ignored): the
    /// simulated throughput when every request waits from time 0, so the queue never empties. Above it the queue grows without bound.
    /// </summary>
    public static double SaturatedRequestsPerSecond(DeploymentModel model, IReadOnlyList<TraceRequest> mix, int? maxNumSeqs = null)
    {
        ArgumentNullException.ThrowIfNull(mix);
        var backlog = mix.Select(r => r with { ArrivalMs = 0 }).ToArray();
        var run = ServingSimulation.Simulate(model, backlog, maxNumSeqs);
        var makespan = run.Requests.Max(r => r.FinishMs);
        return backlog.Length / (makespan / 1000);
    }
}
