using System.Globalization;
using System.Runtime.ExceptionServices;

namespace Lens.Core;

/// <summary>
/// Capacity planning over parallel layouts (method.md, "Parallel layouts and cost"): for a workload and an SLO, the fewest replicas of
/// each candidate deployment that meet it, what they cost, and how much faster the workload could arrive before that fleet stops
/// meeting it. Each candidate is searched on its own by simulating the whole trace on fleets of growing size (1, 2, 4, ... up to the
/// limit, then bisection between the last that failed and the first that met). The search takes attainment as monotone in the
/// replica count and in the rate. It is, up to a few requests: a replica that takes a late arrival can make it wait where another
/// would not, so neighbouring counts may differ by a fraction of a point the wrong way (tests bound it by one point). Whatever the
/// search returns, that count was simulated and met, and the count below it was simulated and failed. Deterministic: the same inputs
/// give the same plan.
/// </summary>
public static class CapacityPlanner
{
    public const int ReplicaLimit = 4096;
    public const int CandidateLimit = 64;

    /// <summary>The range of time scales the rate searches cover (1/1024 to 1024 times the workload's rate).</summary>
    public const double MinScale = 1.0 / 1024, MaxScale = 1024;

    /// <summary>Rate searches stop when the bracket is within this factor (1%).</summary>
    public const double RateTolerance = 1.01;

    /// <summary>Plans every candidate (in parallel); the cheapest that meets the SLO is marked.</summary>
    public static CapacityPlan Plan(IReadOnlyList<CapacityCandidate> candidates, IReadOnlyList<TraceRequest> trace, CapacitySlo slo,
        CapacityOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        options ??= new CapacityOptions();
        Validate(candidates, trace, slo, options);
        var plans = new CandidatePlan[candidates.Count];
        try
        {
            Parallel.For(0, candidates.Count, k => plans[k] = PlanOne(candidates[k], trace, slo, options));
        }
        catch (AggregateException ex) when (ex.InnerExceptions.Count > 0)
        {
            ExceptionDispatchInfo.Capture(ex.InnerExceptions[0]).Throw();
            throw;
        }

        return new CapacityPlan(MarkCheapest(plans), slo, options.Routing, trace.Count, OfferedRate(trace));
    }

    /// <summary>The share of <paramref name="trace"/>'s requests that meet <paramref name="slo"/> on a fleet of
    /// <paramref name="replicas"/>.</summary>
    public static double Attainment(CapacityCandidate candidate, int replicas, IReadOnlyList<TraceRequest> trace, ServiceObjectives slo,
        FleetRouting routing)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(slo);
        var run = ServingSimulation.Simulate(candidate.Model, trace, candidate.MaxNumSeqs, replicas, routing);
        var met = 0;
        foreach (var r in run.Requests)
        {
            if (r.Meets(slo))
            {
                met++;
            }
        }

        return (double)met / run.Requests.Count;
    }

    /// <summary>
    /// The inverse question: the largest rate at which <paramref name="replicas"/> replicas of <paramref name="candidate"/> meet the
    /// SLO, found by scaling the trace's arrival times (bracketed by doubling or halving from the workload's own rate, then bisected
    /// to <see cref="RateTolerance"/>).
    /// </summary>
    public static FleetRate MaxRate(CapacityCandidate candidate, int replicas, IReadOnlyList<TraceRequest> trace, CapacitySlo slo,
        FleetRouting routing = FleetRouting.Shared)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(slo);
        if (replicas is < 1 or > ReplicaLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(replicas), replicas, $"replicas must be in 1..{ReplicaLimit}; got {replicas}");
        }

        Validate([candidate], trace, slo, new CapacityOptions(routing, replicas));

        return MaxRate(candidate, replicas, trace, slo, routing, Attainment(candidate, replicas, trace, slo.Objectives, routing));
    }

    /// <summary>
    /// The search behind <see cref="MaxRate(CapacityCandidate, int, IReadOnlyList{TraceRequest}, CapacitySlo, FleetRouting)"/>, in
    /// the log of the scale: a bracket, then bisection to <see cref="RateTolerance"/>. When the fleet meets the workload's own rate,
    /// the bracket is found from below the old first guess: plain bisection of [1, 2] would probe 2, then <c>2^(1/2)</c>,
    /// <c>2^(1/4)</c>, ... while they fail, down to the fleet's limit. For <c>n</c> replicas the limit is about <c>n / (n - 1)</c>
    /// at most (a fleet's rate grows about in proportion to its replicas, and the capacity search that chose <c>n</c> found that
    /// <c>n - 1</c> do not meet the rate), so those probes above the smallest <c>2^(1/2^m)</c> at or above it are skipped: the first
    /// probe is that one, and from there the search climbs back up the same points while they meet, or bisects exactly as before.
    /// The answer is the plain bisection's whenever the skipped probes would have failed, which they do when attainment falls with
    /// the rate; only probes far above the limit are skipped, where the miss budget stops a run early anyway.
    /// </summary>
    private static FleetRate MaxRate(CapacityCandidate candidate, int replicas, IReadOnlyList<TraceRequest> trace, CapacitySlo slo,
        FleetRouting routing, double attainmentAtOne)
    {
        var offered = OfferedRate(trace);
        var found = new Dictionary<double, double> { [1] = attainmentAtOne };
        double At(double scale)
        {
            if (!found.TryGetValue(scale, out var a))
            {
                // NaN: the run stopped once the fleet could no longer reach the attainment.
                found[scale] = a = MeetingAttainment(candidate, replicas, Scaled(trace, scale), slo, routing, out _) ?? double.NaN;
            }

            return a;
        }

        bool Meets(double scale) => At(scale) >= slo.Attainment;
        double lo, hi;
        if (Meets(1))
        {
            // The points plain bisection probes while they fail: 2, 2^(1/2), 2^(1/4), ... (the same doubles: Math.Sqrt(1 * hi)).
            var limit = replicas > 1 ? replicas / (replicas - 1.0) : 2;
            var below = new List<double> { 2 };
            while (below[^1] > RateTolerance && Math.Sqrt(below[^1]) >= limit)
            {
                below.Add(Math.Sqrt(below[^1]));
            }

            (lo, hi) = (1, below[^1]);
            while (Meets(hi))
            {
                if (hi >= MaxScale)
                {
                    return new FleetRate(hi, offered * hi, At(hi), true);
                }

                if (below.Count > 0)
                {
                    below.RemoveAt(below.Count - 1);
                }

                (lo, hi) = (hi, below.Count > 0 ? below[^1] : hi * 2);
            }
        }
        else
        {
            (lo, hi) = (0.5, 1);
            while (!Meets(lo))
            {
                if (lo <= MinScale)
                {
                    return new FleetRate(0, 0, At(lo), false);
                }

                (lo, hi) = (lo / 2, lo);
            }
        }

        while (hi / lo > RateTolerance)
        {
            var mid = Math.Sqrt(lo * hi);
            if (Meets(mid))
            {
                lo = mid;
            }
            else
            {
                hi = mid;
            }
        }

        return new FleetRate(lo, offered * lo, At(lo), false);
    }

    /// <summary>The attainment of a fleet, or null as soon as it cannot reach <paramref name="slo"/>'s (the run stops there);
    /// <paramref name="run"/> is the whole run when it can.</summary>
    private static double? MeetingAttainment(CapacityCandidate candidate, int replicas, IReadOnlyList<TraceRequest> trace, CapacitySlo slo,
        FleetRouting routing, out ServingRun? run)
    {
        var objectives = slo.Objectives;
        run = ServingSimulation.Simulate(candidate.Model, trace, candidate.MaxNumSeqs, replicas, routing,
            new MissBudget(objectives, slo.Attainment, trace.Count));
        if (run is null)
        {
            return null;
        }

        var met = 0;
        foreach (var r in run.Requests)
        {
            if (r.Meets(objectives))
            {
                met++;
            }
        }

        return (double)met / run.Requests.Count;
    }

    /// <summary>
    /// The one trace every candidate is planned on, for the CLI, the service and the console alike: a given trace as it is (each front
    /// end refuses, in its own words, a row a candidate cannot serve), or the generated one drawn with the default lengths of the
    /// candidate with the shortest sequences and clamped (<see cref="Workload.Fit(DeploymentModel, IReadOnlyList{TraceRequest})"/>'s
    /// rule) into what every candidate serves under its own scheduling policy (a paged candidate's blocks are not tokens);
    /// <see cref="FittedTrace.Clamped"/> counts the drawn requests that changed.
    /// </summary>
    public static FittedTrace Trace(Workload workload, IReadOnlyList<DeploymentModel> models)
    {
        ArgumentNullException.ThrowIfNull(models);
        return Trace(workload, [.. models.Select(Workload.Served)], k => workload.Generate(models[k]), k => workload.Draw(models[k]));
    }

    /// <summary>As <see cref="Trace(Workload, IReadOnlyList{DeploymentModel})"/> for candidates known by their buckets only
    /// (prefill-first padded).</summary>
    public static FittedTrace Trace(Workload workload, IReadOnlyList<BucketSet> buckets)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        return Trace(workload, [.. buckets.Select(Workload.Served)], k => workload.Generate(buckets[k]), k => workload.Draw(buckets[k]));
    }

    private static FittedTrace Trace(Workload workload, (int MaxInput, int MaxSequence)[] served, Func<int, FittedTrace> generate,
        Func<int, IReadOnlyList<TraceRequest>> draw)
    {
        ArgumentNullException.ThrowIfNull(workload);
        if (served.Length == 0)
        {
            throw new ArgumentException("give at least one candidate", nameof(served));
        }

        var shortest = Enumerable.Range(0, served.Length).MinBy(k => (served[k].MaxSequence, served[k].MaxInput));
        if (workload.Trace is not null)
        {
            return generate(shortest);
        }

        // What every candidate serves: prompts up to the least bound, sequences up to the least bound; Fit's one rule clamps the draws
        // into it (prompt first, then output), whatever the candidates' order.
        var maxInput = served.Min(b => b.MaxInput);
        return maxInput < 1 ? Workload.Fit(served[shortest].MaxInput, served[shortest].MaxSequence, draw(shortest))
            : Workload.Fit(maxInput, served.Min(b => b.MaxSequence), draw(shortest));
    }

    /// <summary>Requests per second over the span of the arrivals; NaN when they all arrive at once.</summary>
    public static double OfferedRate(IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(trace);
        double first = double.MaxValue, last = double.MinValue;
        foreach (var r in trace)
        {
            first = Math.Min(first, r.ArrivalMs);
            last = Math.Max(last, r.ArrivalMs);
        }

        return trace.Count > 1 && last > first ? (trace.Count - 1) / ((last - first) / 1000) : double.NaN;
    }

    /// <summary>The trace with arrivals <paramref name="scale"/> times as frequent (times divided by the scale).</summary>
    public static TraceRequest[] Scaled(IReadOnlyList<TraceRequest> trace, double scale)
    {
        ArgumentNullException.ThrowIfNull(trace);
        var scaled = new TraceRequest[trace.Count];
        for (var k = 0; k < scaled.Length; k++)
        {
            scaled[k] = trace[k] with { ArrivalMs = trace[k].ArrivalMs / scale };
        }

        return scaled;
    }

    private static CandidatePlan PlanOne(CapacityCandidate candidate, IReadOnlyList<TraceRequest> trace, CapacitySlo slo, CapacityOptions options)
    {
        var runs = new Dictionary<int, ServingRun>();
        bool Meets(int n)
        {
            if (MeetingAttainment(candidate, n, trace, slo, options.Routing, out var run) is { } a && a >= slo.Attainment)
            {
                runs[n] = run!;
                return true;
            }

            return false;
        }

        // Double until a fleet meets it, then bisect: `failed` never meets (0 stands for no fleet), `met` does.
        int failed = 0, met = 0;
        for (var n = 1; ; n = Math.Min(n * 2, options.MaxReplicas))
        {
            if (Meets(n))
            {
                met = n;
                break;
            }

            failed = n;
            if (n == options.MaxReplicas)
            {
                break;
            }
        }

        if (met == 0)
        {
            var run = ServingSimulation.Simulate(candidate.Model, trace, candidate.MaxNumSeqs, options.MaxReplicas, options.Routing);
            return Describe(candidate, run, slo, null, Reason(run, slo, options.MaxReplicas));
        }

        while (met - failed > 1)
        {
            var mid = failed + ((met - failed) / 2);
            if (Meets(mid))
            {
                met = mid;
            }
            else
            {
                failed = mid;
            }
        }

        var chosen = runs[met];
        var headroom = options.Headroom
            ? MaxRate(candidate, met, trace, slo, options.Routing, chosen.Summarize(slo.Objectives).SloAttainment!.Value)
            : null;
        return Describe(candidate, chosen, slo, headroom, null);
    }

    private static string Reason(ServingRun run, CapacitySlo slo, int replicas)
    {
        int ttft = 0, tpot = 0, both = 0;
        foreach (var r in run.Requests)
        {
            var t = r.TtftMs <= slo.TtftMs;
            var p = r.OutputLength == 1 || r.TpotMs <= slo.TpotMs;
            ttft += t ? 1 : 0;
            tpot += p ? 1 : 0;
            both += t && p ? 1 : 0;
        }

        double n = run.Requests.Count;
        var limit = tpot < ttft ? "TPOT" : "TTFT";
        return string.Create(CultureInfo.InvariantCulture,
            $"even {replicas} replica(s) meet the SLO for {both / n:P1} of requests (needs {slo.Attainment:P1}): TTFT <= {slo.TtftMs} ms ") +
               string.Create(CultureInfo.InvariantCulture, $"for {ttft / n:P1}, TPOT <= {slo.TpotMs} ms for {tpot / n:P1}; {limit} is the limit");
    }

    private static CandidatePlan Describe(CapacityCandidate candidate, ServingRun run, CapacitySlo slo, FleetRate? headroom, string? reason)
    {
        var s = run.Summarize(slo.Objectives);
        var layout = candidate.Model.Layout;
        var chips = run.Replicas * layout.Chips;
        double? costPerHour = layout.PricePerChipHour is { } price ? chips * price : null;
        double? perMillion = costPerHour is { } c && s.OutputTokensPerSecond > 0 ? c / (s.OutputTokensPerSecond * 3600) * 1e6 : null;
        return new CandidatePlan(candidate.Name, reason is null, reason, run.Replicas, layout.Chips, chips, layout.DeviceKind,
            layout.PricePerChipHour, costPerHour, perMillion, s.SloAttainment ?? double.NaN, s.Ttft.P50, s.Ttft.P90, s.Ttft.P99, s.Tpot.P50,
            s.Tpot.P90, s.Tpot.P99, s.E2e.P50, s.E2e.P90, s.E2e.P99, s.Utilization, s.RequestsPerSecond, s.OutputTokensPerSecond,
            headroom?.RequestsPerSecond, headroom?.IsLowerBound ?? false, false);
    }

    /// <summary>Marks the cheapest that meets: by cost per hour when every one that meets has a price, else by chips; then p90 E2E,
    /// then the order given.</summary>
    private static CandidatePlan[] MarkCheapest(CandidatePlan[] plans)
    {
        var meeting = plans.Select((p, k) => (Plan: p, Index: k)).Where(x => x.Plan.Meets).ToArray();
        if (meeting.Length == 0)
        {
            return plans;
        }

        var priced = meeting.All(x => x.Plan.CostPerHour is not null);
        var best = meeting.OrderBy(x => priced ? x.Plan.CostPerHour!.Value : x.Plan.Chips).ThenBy(x => x.Plan.E2eP90Ms).ThenBy(x => x.Index).First();
        plans[best.Index] = best.Plan with { Cheapest = true };
        return plans;
    }

    private static void Validate(IReadOnlyList<CapacityCandidate> candidates, IReadOnlyList<TraceRequest> trace, CapacitySlo slo, CapacityOptions options)
    {
        ArgumentNullException.ThrowIfNull(trace);
        ArgumentNullException.ThrowIfNull(slo);
        if (candidates.Count is < 1 or > CandidateLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(candidates), candidates.Count, $"give 1..{CandidateLimit} candidates");
        }

        if (slo.Check() is { } problem)
        {
            throw new ArgumentOutOfRangeException(nameof(slo), slo, problem);
        }

        if (options.MaxReplicas is < 1 or > ReplicaLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxReplicas, $"maxReplicas must be in 1..{ReplicaLimit}; got {options.MaxReplicas}");
        }

        if (trace.Count == 0)
        {
            throw new ArgumentException("the trace is empty; give at least one request");
        }

        foreach (var c in candidates)
        {
            if (Workload.FirstOutOfRange(c.Model, trace) is { } bad)
            {
                throw new RequestOutOfRangeException($"{c.Name}: trace row {bad.Index + 1}: {bad.Reason}");
            }

            if (c.MaxNumSeqs is { } seqs && (seqs < 1 || seqs > c.Model.MaxNumSeqs))
            {
                throw new ArgumentOutOfRangeException(nameof(candidates), seqs, $"{c.Name}: maxNumSeqs must be in 1..{c.Model.MaxNumSeqs}");
            }
        }
    }
}
