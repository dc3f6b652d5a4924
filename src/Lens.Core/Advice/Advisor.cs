namespace Lens.Core;

/// <summary>
/// The deployment advisor: from one profiled model (through its <see cref="BucketCostModel"/>) and a workload, the bucket edges that
/// minimise the workload's mean single-request E2E under a budget of K prefill and K decode buckets (exact: <see cref="EdgeProgram"/>;
/// prefill and decode separate, because a request's prefill cost depends only on the prefill edges and its decode steps only on the
/// decode edges), and, when the deployment batches, the edges and batch buckets that maximise goodput under the SLO (the serving
/// simulation as the objective, over each budget's edges with each prefix of a batch list), and the replicas a target rate needs.
/// </summary>
public static class Advisor
{
    /// <summary>The longest sequence the advisor plans for (its per-length work array is this long at most).</summary>
    public const int MaxLength = 1 << 22;

    public static Advice Advise(BucketCostModel costs, AdviceQuery request)
    {
        ArgumentNullException.ThrowIfNull(costs);
        ArgumentNullException.ThrowIfNull(request);
        var trace = request.Trace ?? throw new ArgumentException("the workload has no trace");
        Validate(costs, request);
        var batch = SearchedBatch(costs, request.BatchBuckets);
        var convention = costs.Source.Buckets.Convention;

        var (granularity, prefillCandidates, decodeCandidates) = Candidates(costs, trace, convention, request.Granularity);
        var prefillMass = PrefillMass(trace, prefillCandidates);
        var decodeMass = DecodeMass(trace, decodeCandidates, convention);
        var prefillCost = prefillCandidates.Select(e => costs.PrefillCost(e).Ms).ToArray();
        var stepCost = decodeCandidates.Select(e => costs.StepCost(e, costs.SingleBatch).Ms).ToArray();

        var frontier = new List<ScoredDeployment>();
        for (var k = 1; k <= request.MaxBuckets; k++)
        {
            var (p, _) = EdgeProgram.Best(prefillCandidates, prefillMass, prefillCost, k);
            var (d, _) = EdgeProgram.Best(decodeCandidates, decodeMass, stepCost, k);
            if (frontier.Count > 0 && frontier[^1].Prefill.SequenceEqual(p) && frontier[^1].Decode.SequenceEqual(d))
            {
                break; // a larger budget buys nothing more
            }

            frontier.Add(Score($"k={k}", costs, new BucketSet(p, d, convention, [costs.SingleBatch]), trace, request.Slo));
        }

        var best = frontier[^1];
        var batchSearch = new List<ScoredDeployment>();
        if (batch.Length > 1)
        {
            // With batching the serving simulation is the objective: each budget's edges (the single-request optimum for that budget)
            // with each prefix of the batch list, served at the workload's arrivals.
            foreach (var edges in frontier)
            {
                for (var n = 1; n <= batch.Length; n++)
                {
                    var prefix = batch[..n];
                    batchSearch.Add(Score($"{edges.Name} B={string.Join(',', prefix)}", costs,
                        new BucketSet(edges.Prefill, edges.Decode, convention, prefix), trace, request.Slo));
                }
            }

            best = BestServing(batchSearch, request.Slo is not null);
        }

        best = best with { Name = "recommended" };
        var recommendedSet = new BucketSet(best.Prefill, best.Decode, convention, best.Batch);

        // The current deployment serves the workload as simulate would: requests longer than its buckets clamped into them, counted
        // (Workload.Fit), so it stays in the comparison.
        ScoredDeployment? current = null;
        string? reason = null;
        string? clampNote = null;
        if (!costs.Source.IsComplete)
        {
            reason = $"the profiled model has unfitted buckets ({string.Join(", ", costs.Source.Unfitted.Take(5))})";
        }
        else
        {
            var fitted = Workload.Fit(costs.Source.Buckets, trace);
            current = Score("current", costs.Source, fitted.Requests, request.Slo);
            clampNote = fitted.ClampNote;
        }

        var replicas = request.TargetRate is { } rate ? SizeReplicas(WhatIfModels.Predict(costs, recommendedSet), trace, rate, request) : null;
        return new Advice(trace.Count, RateOf(trace), request.Slo, current, reason, best, frontier, batchSearch, replicas,
            CurveSummary.Of(costs.Prefill), CurveSummary.Of(costs.Decode), granularity)
        {
            CurrentClampNote = clampNote,
        };
    }

    /// <summary>
    /// The most goodput under the SLO (throughput without one); among equals, the lowest p90 E2E, where p90s within 1% of the lowest
    /// count as equal and the fewest graphs to compile wins.
    /// </summary>
    internal static ScoredDeployment BestServing(IReadOnlyList<ScoredDeployment> scored, bool hasSlo)
    {
        double Served(ScoredDeployment s) => Math.Round(hasSlo ? s.Serving.GoodputPerSecond!.Value : s.Serving.RequestsPerSecond, 9);
        var most = scored.Max(Served);
        var top = scored.Where(s => Served(s) >= most).ToArray();
        var lowest = top.Min(s => s.Serving.E2e.P90);
        return top.Where(s => s.Serving.E2e.P90 <= lowest * 1.01).OrderBy(s => s.BucketsCompiled).ThenBy(s => s.Serving.E2e.P90).First();
    }

    /// <summary>Mean E2E of the trace's requests, each run alone (single requests decode at the smallest batch bucket).</summary>
    public static double MeanE2e(DeploymentModel model, IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(trace);
        var sum = 0.0;
        foreach (var r in trace)
        {
            sum += model.Predict(r.InputLength, r.OutputLength).E2eMs;
        }

        return sum / trace.Count;
    }

    private static ScoredDeployment Score(string name, BucketCostModel costs, BucketSet buckets, IReadOnlyList<TraceRequest> trace,
        ServiceObjectives? slo) => Score(name, WhatIfModels.Predict(costs, buckets), trace, slo);

    private static ScoredDeployment Score(string name, DeploymentModel model, IReadOnlyList<TraceRequest> trace, ServiceObjectives? slo)
    {
        var b = model.Buckets;
        var run = ServingSimulation.Simulate(model, trace);
        return new ScoredDeployment(name, [.. b.Prefill], [.. b.Decode], [.. b.Batch], b.Prefill.Length + (b.Decode.Length * b.Batch.Length),
            MeanE2e(model, trace), run.Summarize(slo))
        {
            Overloaded = IsOverloaded(run, trace),
        };
    }

    /// <summary>
    /// Whether one replica was busy for longer than the arrivals span (the offered load at or above its capacity): its queue then grows
    /// through the whole trace, and its latencies measure the trace's length rather than the deployment.
    /// </summary>
    internal static bool IsOverloaded(ServingRun run, IReadOnlyList<TraceRequest> trace)
    {
        double first = trace.Min(r => r.ArrivalMs), last = trace.Max(r => r.ArrivalMs);
        return trace.Count > 1 && run.BusyMs / run.Replicas >= last - first;
    }

    private static void Validate(BucketCostModel costs, AdviceQuery request)
    {
        if (request.Trace.Count == 0)
        {
            throw new ArgumentException("the workload is empty; give at least one request");
        }

        if (request.MaxBuckets is < 1 or > AdviceQuery.MaxBudget)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.MaxBuckets,
                $"the bucket budget {request.MaxBuckets} is outside 1..{AdviceQuery.MaxBudget}");
        }

        if (request.Granularity is < 1 or > 4096)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.Granularity, $"the granularity {request.Granularity} is outside 1..4096");
        }

        if (!(request.Goal is > 0 and <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.Goal, $"the attainment goal {request.Goal} is outside (0, 1]");
        }

        if (request.TargetRate is { } rate && (!(rate > 0) || !double.IsFinite(rate)))
        {
            throw new ArgumentOutOfRangeException(nameof(request), rate, $"the target rate {rate} must be a positive number");
        }

        if (request.TargetRate is not null && request.Slo is null)
        {
            throw new ArgumentException("sizing replicas for a target rate needs the SLO (TTFT and TPOT)");
        }

        if (FirstUnsupported(costs, request.Trace) is { } bad)
        {
            throw new RequestOutOfRangeException($"request #{bad.Index + 1}: {bad.Reason}");
        }
    }

    /// <summary>
    /// The one-bucket set spanning what the cost curves can plan for (prompts up to <see cref="BucketCostModel.MaxPrefillEdge"/>,
    /// sequences up to <see cref="BucketCostModel.MaxDecodeEdge"/>): generated workloads are clamped into it (<see cref="Workload.Fit(BucketSet, IReadOnlyList{TraceRequest})"/>).
    /// </summary>
    public static BucketSet Supported(BucketCostModel costs)
    {
        ArgumentNullException.ThrowIfNull(costs);
        return new BucketSet([costs.MaxPrefillEdge], [Math.Max(costs.MaxPrefillEdge, costs.MaxDecodeEdge)]);
    }

    /// <summary>The first request of <paramref name="trace"/> the profile cannot plan buckets for, with the reason; null when all can.</summary>
    public static (int Index, string Reason)? FirstUnsupported(BucketCostModel costs, IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(costs);
        ArgumentNullException.ThrowIfNull(trace);
        for (var n = 0; n < trace.Count; n++)
        {
            var r = trace[n];
            if (r.InputLength < 1 || r.OutputLength < 1 || !double.IsFinite(r.ArrivalMs) || r.ArrivalMs < 0)
            {
                return (n, "lengths must be at least 1 and the arrival a finite time >= 0");
            }

            if (r.InputLength > costs.MaxPrefillEdge || (long)r.InputLength + r.OutputLength > Math.Min(costs.MaxDecodeEdge, MaxLength))
            {
                return (n, $"I = {r.InputLength}, O = {r.OutputLength} needs buckets beyond what the profile supports (prompt at most " +
                           $"{costs.MaxPrefillEdge}, I + O at most {costs.MaxDecodeEdge}: {BucketCostModel.MaxLengthFactor}x the profiled buckets)");
            }
        }

        return null;
    }

    private static int[] SearchedBatch(BucketCostModel costs, IReadOnlyList<int>? given)
    {
        if (given is not null)
        {
            var set = new BucketSet([1], [1], batch: given); // validates: positive, ascending, distinct
            if (set.MaxBatch > costs.MaxBatch)
            {
                throw new WhatIfRangeException(BucketKind.Decode, true,
                    $"batch bucket {set.MaxBatch} is above the largest profiled batch bucket {costs.MaxBatch} (allowed 1..{costs.MaxBatch})");
            }

            return [.. set.Batch];
        }

        if (!costs.Source.Buckets.IsBatched)
        {
            return [costs.SingleBatch];
        }

        var pow2 = new List<int>();
        for (var b = 1; b <= costs.MaxBatch; b *= 2)
        {
            pow2.Add(b);
        }

        if (pow2[^1] != costs.MaxBatch)
        {
            pow2.Add(costs.MaxBatch);
        }

        return [.. pow2];
    }

    /// <summary>Candidate edges: needed lengths rounded up to the granularity (doubled until at most the cap), plus the profiled edges.</summary>
    private static (int Granularity, int[] Prefill, int[] Decode) Candidates(BucketCostModel costs, IReadOnlyList<TraceRequest> trace,
        DecodeConvention convention, int granularity)
    {
        var maxInput = trace.Max(r => r.InputLength);
        var maxSequence = trace.Max(r => r.InputLength + r.OutputLength);
        var maxStep = trace.Max(r => r.OutputLength > 1 ? r.InputLength + r.OutputLength - 1 + (int)convention : 0);
        while (true)
        {
            var g = granularity;
            int Up(int length, int limit) => Math.Min(limit, (int)Math.Min(int.MaxValue, ((long)length + g - 1) / g * g));
            var prefillTop = Up(maxInput, costs.MaxPrefillEdge);
            var decodeTop = Math.Max(Up(Math.Max(maxSequence, maxStep), costs.MaxDecodeEdge), prefillTop);
            var prefill = new SortedSet<int>(trace.Select(r => Up(r.InputLength, prefillTop)))
            {
                prefillTop,
            };
            var decode = new SortedSet<int> { decodeTop };
            for (var e = g; e < decodeTop; e += g)
            {
                decode.Add(e); // decode steps cover every length below the longest sequence
            }

            if (prefill.Count <= AdviceQuery.MaxCandidates && decode.Count <= AdviceQuery.MaxCandidates)
            {
                // The profiled edges too (their costs are measured), while the cap allows: a coarser grid always fits at last.
                AddWithin(prefill, costs.Source.Buckets.Prefill.Where(e => e < prefillTop));
                AddWithin(decode, costs.Source.Buckets.Decode.Where(e => e < decodeTop));
                return (g, [.. prefill], [.. decode]);
            }

            granularity *= 2;
        }
    }

    private static void AddWithin(SortedSet<int> candidates, IEnumerable<int> edges)
    {
        var more = edges.Where(e => !candidates.Contains(e)).ToArray();
        if (candidates.Count + more.Length <= AdviceQuery.MaxCandidates)
        {
            candidates.UnionWith(more);
        }
    }

    /// <summary>Requests whose prompt falls in each candidate's range.</summary>
    private static double[] PrefillMass(IReadOnlyList<TraceRequest> trace, int[] candidates)
    {
        var mass = new double[candidates.Length];
        foreach (var r in trace)
        {
            var j = Array.BinarySearch(candidates, r.InputLength);
            mass[j >= 0 ? j : ~j]++;
        }

        return mass;
    }

    /// <summary>Decode steps whose length falls in each candidate's range, from a difference array over lengths: linear in the input.</summary>
    private static double[] DecodeMass(IReadOnlyList<TraceRequest> trace, int[] candidates, DecodeConvention convention)
    {
        var top = candidates[^1];
        var diff = new long[top + 2];
        foreach (var r in trace)
        {
            if (r.OutputLength < 2)
            {
                continue;
            }

            int from = r.InputLength + 1 + (int)convention, to = r.InputLength + r.OutputLength - 1 + (int)convention;
            diff[Math.Max(from, 0)]++;
            diff[Math.Min(to, top) + 1]--;
        }

        var mass = new double[candidates.Length];
        long running = 0;
        var j = 0;
        for (var length = 0; length <= top; length++)
        {
            running += diff[length];
            while (candidates[j] < length)
            {
                j++;
            }

            mass[j] += running;
        }

        return mass;
    }

    private static double RateOf(IReadOnlyList<TraceRequest> trace)
    {
        double first = trace.Min(r => r.ArrivalMs), last = trace.Max(r => r.ArrivalMs);
        return trace.Count > 1 && last > first ? (trace.Count - 1) / ((last - first) / 1000) : double.PositiveInfinity;
    }

    /// <summary>The smallest replica count whose simulated attainment reaches the goal, with arrivals rescaled to the target rate.</summary>
    private static ReplicaAdvice SizeReplicas(DeploymentModel model, IReadOnlyList<TraceRequest> trace, double target, AdviceQuery request)
    {
        var rate = RateOf(trace);
        if (!double.IsFinite(rate))
        {
            return new ReplicaAdvice(target, request.Goal, null, null, "the trace's arrivals span no time, so it has no rate to rescale");
        }

        var scale = rate / target;
        TraceRequest[] scaled = [.. trace.Select(r => r with { ArrivalMs = r.ArrivalMs * scale })];
        double Attainment(int replicas) => WorkloadSimulation.Run(model, scaled, replicas, request.Slo).SloAttainment!.Value;

        // Attainment grows with replicas: double until the goal is met, then bisect.
        int low = 0, high = 1;
        var atHigh = Attainment(high);
        while (atHigh < request.Goal)
        {
            if (high >= AdviceQuery.MaxReplicas)
            {
                return new ReplicaAdvice(target, request.Goal, null, atHigh,
                    $"even {AdviceQuery.MaxReplicas} replicas reach only {atHigh:P1} of requests within the SLO");
            }

            low = high;
            high = Math.Min(high * 2, AdviceQuery.MaxReplicas);
            atHigh = Attainment(high);
        }

        while (high - low > 1)
        {
            var mid = (low + high) / 2;
            var at = Attainment(mid);
            if (at >= request.Goal)
            {
                (high, atHigh) = (mid, at);
            }
            else
            {
                low = mid;
            }
        }

        return new ReplicaAdvice(target, request.Goal, high, atHigh, null);
    }
}
