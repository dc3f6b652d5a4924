namespace Lens.Core;

/// <summary>
/// The best bucket edges under a budget, as an exact dynamic program. Candidates <c>c_0 &lt; ... &lt; c_(m-1)</c> (the last one covers
/// the workload), <c>mass[j]</c> the work whose length falls in <c>(c_(j-1), c_j]</c> (requests for prefill, decode steps for
/// decode) and <c>cost(c_j)</c> the cost of one unit run in a bucket at <c>c_j</c>. A set of edges <c>e_1 &lt; ... &lt; e_k = c_(m-1)</c>
/// costs <c>sum over i of cost(e_i) * mass(e_(i-1), e_i]</c>: every unit runs in the smallest chosen edge at or above it. With
/// <c>F[k][j]</c> the least cost of the work up to <c>c_j</c> with <c>k</c> edges, the last at <c>c_j</c>:
/// <code>F[1][j] = cost(c_j) * M[j],   F[k][j] = min over i &lt; j of F[k-1][i] + cost(c_j) * (M[j] - M[i])</code>
/// (<c>M</c> the prefix sums of mass). O(K m^2) time, O(K m) memory.
/// </summary>
public static class EdgeProgram
{
    /// <summary>The least-cost edges (ascending, at most <paramref name="budget"/>, the last candidate always among them) and their cost.</summary>
    public static (int[] Edges, double Cost) Best(IReadOnlyList<int> candidates, IReadOnlyList<double> mass, IReadOnlyList<double> unitCost, int budget)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(mass);
        ArgumentNullException.ThrowIfNull(unitCost);
        var m = candidates.Count;
        if (m == 0 || mass.Count != m || unitCost.Count != m)
        {
            throw new ArgumentException($"the program needs one mass and one cost per candidate: {m} candidates, {mass.Count} masses, {unitCost.Count} costs");
        }

        if (budget < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(budget), budget, "the bucket budget must be at least 1");
        }

        var prefix = new double[m];
        for (var j = 0; j < m; j++)
        {
            prefix[j] = mass[j] + (j > 0 ? prefix[j - 1] : 0);
        }

        // F[k][j] with exactly k + 1 edges, the last at c_j (infinite when impossible); the answer is the best level at the last candidate.
        var levels = Math.Min(budget, m);
        var f = new double[levels, m];
        var from = new int[levels, m];
        for (var j = 0; j < m; j++)
        {
            f[0, j] = unitCost[j] * prefix[j];
            from[0, j] = -1;
        }

        for (var k = 1; k < levels; k++)
        {
            for (var j = 0; j < m; j++)
            {
                (f[k, j], from[k, j]) = (double.PositiveInfinity, -1);
                for (var i = k - 1; i < j; i++)
                {
                    var c = f[k - 1, i] + (unitCost[j] * (prefix[j] - prefix[i]));
                    if (c < f[k, j])
                    {
                        (f[k, j], from[k, j]) = (c, i);
                    }
                }
            }
        }

        // Fewest edges among equal costs (within rounding): fewer graphs to compile.
        var level = 0;
        for (var k = 1; k < levels; k++)
        {
            if (f[k, m - 1] < f[level, m - 1] - (1e-9 * Math.Abs(f[level, m - 1])))
            {
                level = k;
            }
        }

        var cost = f[level, m - 1];
        var edges = new List<int>();
        for (var at = m - 1; at >= 0; level--)
        {
            edges.Add(candidates[at]);
            at = from[level, at];
        }

        edges.Reverse();
        return ([.. edges], cost);
    }
}

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
    SimulationResult Serving);

/// <summary>The replicas needed for a target rate at the SLO.</summary>
public sealed record ReplicaAdvice(double TargetRate, double Goal, int? Replicas, double? Attainment, string? Reason);

/// <summary>Everything <c>lens advise</c> recommends, with the numbers behind it.</summary>
/// <param name="Current">The profiled deployment's own buckets on the workload (null when they cannot serve it: <paramref name="CurrentReason"/>).</param>
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
    /// <summary>Every deployment scored: the current one (when scored), the frontier, then the batch search.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IEnumerable<ScoredDeployment> Scored =>
        (Current is null ? Enumerable.Empty<ScoredDeployment>() : [Current]).Concat(Frontier).Concat(BatchSearch);
}

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

        ScoredDeployment? current = null;
        string? reason = null;
        if (WorkloadSimulation.FirstOutOfRange(costs.Source.Buckets, trace) is { } bad)
        {
            reason = $"the profiled buckets cannot serve request #{bad.Index + 1}: {bad.Reason}";
        }
        else if (!costs.Source.IsComplete)
        {
            reason = $"the profiled model has unfitted buckets ({string.Join(", ", costs.Source.Unfitted.Take(5))})";
        }
        else
        {
            current = Score("current", costs.Source, trace, request.Slo);
        }

        var replicas = request.TargetRate is { } rate ? SizeReplicas(WhatIfModels.Predict(costs, recommendedSet), trace, rate, request) : null;
        return new Advice(trace.Count, RateOf(trace), request.Slo, current, reason, best, frontier, batchSearch, replicas,
            CurveSummary.Of(costs.Prefill), CurveSummary.Of(costs.Decode), granularity);
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
        return new ScoredDeployment(name, [.. b.Prefill], [.. b.Decode], [.. b.Batch], b.Prefill.Length + (b.Decode.Length * b.Batch.Length),
            MeanE2e(model, trace), WorkloadSimulation.Run(model, trace, 1, slo));
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

/// <summary>The advice document (<c>advice.json</c>, and the service's answer): the source model, its buckets and the advice.</summary>
public static class AdviceJson
{
    private static readonly System.Text.Json.JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static string Serialize(Advice advice, string source, BucketSet sourceBuckets)
    {
        ArgumentNullException.ThrowIfNull(advice);
        ArgumentNullException.ThrowIfNull(sourceBuckets);
        return System.Text.Json.JsonSerializer.Serialize(new { source, sourceBuckets = sourceBuckets.ToString(), advice }, Options);
    }

    /// <summary>The advice of a document <see cref="Serialize"/> wrote (the service's answer to a client).</summary>
    /// <exception cref="FormatException">The text is not an advice document.</exception>
    public static Advice Deserialize(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize<AdviceDocument>(json, Options)?.Advice
                   ?? throw new FormatException("not an advice document: it has no 'advice'");
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new FormatException($"not an advice document: {ex.Message}", ex);
        }
    }

    private sealed record AdviceDocument(Advice? Advice);
}
