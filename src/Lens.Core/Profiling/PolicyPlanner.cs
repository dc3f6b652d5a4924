using MathNet.Numerics.LinearAlgebra;

namespace Lens.Core;

/// <summary>
/// How a plan reaches one cost cell: the distinct measurements whose counts include it, how many different (non-zero) counts they give,
/// and what is wrong, if anything. A cell reached by one release may still be determined: the paper's pair has the short request's
/// zero steps in it, so the rank of the counts over all reached cells (<see cref="PolicyPlan.NotIdentifiable"/>) is the test.
/// </summary>
public sealed record PlanCell(int Cell, string Name, int Measurements, int DistinctCounts, string? Problem);

/// <summary>
/// A profiling plan under a scheduling policy (method.md, "One fit for every policy"): its rows (groups of identical requests released
/// at once, <see cref="PlanRow.Batch"/> of them, so the profile runner sends them as today's batched plans), every cell with the
/// measurements that reach it, the cells no measurement can reach (named with the reason) or that the design cannot separate, and the
/// cost.
/// </summary>
/// <param name="Cost">Requests (a group of b counts b), steps the device runs (<see cref="PlanCost.DecodeSteps"/>: every step, prefills
/// and mixed steps included) and the width of one pass over the reachable step cells in tokens.</param>
public sealed record PolicyPlan(BucketSet Buckets, SchedulingPolicy Policy, PlanOptions Options, IReadOnlyList<PlanRow> Rows,
    IReadOnlyList<PlanCell> Cells, IReadOnlyList<(string Cell, string Reason)> Unreachable, IReadOnlyList<string> NotIdentifiable, PlanCost Cost);

/// <summary>
/// Plans per policy. Prefill-first padded: today's plan exactly (<see cref="ProfilingPlanner"/>). Every other policy: pairs like the
/// paper's, chosen from the policy's own rules, then checked by running each release through the policy's scheduler with symbolic
/// costs (<see cref="PolicyDesign.CountsOf"/>): which cells each reaches, and the rank of the counts over the reached cells.
/// <list type="bullet">
/// <item>Paged (prefill-first): for batch bucket <c>b</c> and block bucket <c>(L, E]</c>, a group of <c>b</c> identical requests has
/// <c>b * ceil(len / block_size)</c> blocks, so its rows' lengths in <c>((ceil-1) * bs, c * bs]</c> for <c>c</c> in
/// <c>floor(L / b) + 1 .. floor(E / b)</c> run in that cell: today's pair over that length range (the short request's prefill alone
/// and a long one through the range, or beyond the longest prompt a base and a long one), within the KV capacity and max_model_len.
/// A block bucket no multiple of <c>b</c> blocks reaches, or beyond what the KV capacity admits for <c>b</c> rows, is unreachable.</item>
/// <item>Chunked: decode cells <c>(T, K)</c> of rows a decode step fills (<c>T = bucket(n)</c> for <c>n &lt;= max_num_seqs</c>) by a
/// group of <c>n = min(T, max_num_seqs)</c> at prompt <c>L + 1</c> with <c>O = 1</c> and <c>O = E - L - 1</c>; then every cell still
/// reached by fewer than two measurements by prompt-only releases (<c>O = 1</c>) of <c>n</c> identical prompts whose last chunk,
/// <c>n * I</c> less the full budgets before it, falls in the token bucket with <c>I</c> in the context bucket, at the two ends of
/// the range (the plateau check). A token bucket above <c>max_num_batched_tokens</c> is unreachable.</item>
/// </list>
/// </summary>
public static class PolicyPlanner
{
    public static PolicyPlan Create(BucketSet buckets, SchedulingPolicy policy, PlanOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(policy);
        options ??= new PlanOptions();
        options.Validate();
        var scheduler = PolicyScheduler.For(buckets, policy);
        var unreachable = new List<(string, string)>();
        var points = policy.IsDefault ? [.. ProfilingPlanner.PlanPoints(buckets, options.MaxSpan)]
            : policy.Scheduler == SchedulerKind.Chunked ? ChunkedPoints(scheduler, options.MaxSpan, unreachable)
            : PagedPoints(scheduler, options.MaxSpan, unreachable);

        return Report(scheduler, options, points, ProfilingPlanner.Interleave(points, options), unreachable);
    }

    private static PolicyPlan Report(PolicyScheduler scheduler, PlanOptions options, List<PlanRow> points, List<PlanRow> rows, List<(string, string)> unreachable)
    {
        var cells = scheduler.Cells;
        var counts = points.Select(p => PolicyDesign.CountsOf(scheduler, [.. Enumerable.Repeat(new RequestPair(p.InputLength, p.OutputLength), p.Batch)]).E2e).ToArray();
        var byCell = new List<long>[cells.Count];
        for (var c = 0; c < cells.Count; c++)
        {
            byCell[c] = [];
        }

        foreach (var e2e in counts)
        {
            foreach (var c in e2e)
            {
                byCell[c.Cell].Add(c.Steps);
            }
        }

        var named = unreachable.Select(u => u.Item1).ToHashSet();
        var planCells = new List<PlanCell>();
        for (var c = 0; c < cells.Count; c++)
        {
            if (cells.IsPrefill(c) && !cells.UsesPrefill)
            {
                continue;
            }

            if (byCell[c].Count == 0 && !named.Contains(cells.Name(c)))
            {
                // Prefill-first: a prefill bucket no servable prompt lands in; otherwise nothing in the plan's families reaches it.
                unreachable.Add((cells.Name(c), cells.IsPrefill(c) ? "no servable request has its prompt in this bucket"
                    : "no release of identical requests the policy can serve runs a step in it"));
            }

            planCells.Add(new PlanCell(c, cells.Name(c), byCell[c].Count, byCell[c].Distinct().Count(), byCell[c].Count == 0 ? "no measurement reaches it" : null));
        }

        // Identifiability: the rank of the counts over the reached cells (columns scaled alike), as the fit tests it.
        var reached = Enumerable.Range(0, cells.Count).Where(c => byCell[c].Count > 0).ToArray();
        var notIdentifiable = new List<string>();
        if (reached.Length > 0 && counts.Length > 0)
        {
            var at = reached.Select((c, k) => (c, k)).ToDictionary(p => p.c, p => p.k);
            var x = Matrix<double>.Build.Dense(counts.Length, reached.Length);
            for (var r = 0; r < counts.Length; r++)
            {
                foreach (var c in counts[r])
                {
                    x[r, at[c.Cell]] = c.Steps;
                }
            }

            notIdentifiable.AddRange(PolicyFitter.Confounded(x).Select(k => cells.Name(reached[k])));
        }

        planCells = [.. planCells.Select(p => notIdentifiable.Contains(p.Name) ? p with { Problem = "not identifiable: its counts are confounded with other cells'" } : p)];

        long steps = 0;
        for (var p = 0; p < points.Count; p++)
        {
            steps += counts[p].Sum(c => c.Steps) * options.Repeats;
        }

        var width = reached.Where(c => !cells.IsPrefill(c)).Sum(c => (long)CellWidth(scheduler, c));
        return new PolicyPlan(scheduler.Buckets, scheduler.Policy, options, rows, planCells, unreachable, notIdentifiable,
            new PlanCost(rows.Sum(r => r.Batch), steps, width));
    }

    /// <summary>A step cell's width in tokens of one sequence's length: its column's (a block bucket's in tokens, per row of its batch).</summary>
    private static int CellWidth(PolicyScheduler scheduler, int cell)
    {
        var (row, column) = scheduler.Cells.RowColumn(cell);
        var b = scheduler.Buckets;
        var width = b.Decode[column] - b.DecodeLowerEdge(column);
        return scheduler.Policy.Execution == ExecutionKind.Paged
            ? Math.Max(1, width / b.Batch[row]) * scheduler.Policy.BlockSize
            : width;
    }

    private static List<PlanRow> PagedPoints(PolicyScheduler scheduler, int? maxSpan, List<(string, string)> unreachable)
    {
        var b = scheduler.Buckets;
        var cells = scheduler.Cells;
        var bs = scheduler.Policy.BlockSize;
        var offset = (int)b.Convention;
        var pm = b.MaxPrompt;
        var points = new List<PlanRow>();
        var covered = new bool[b.Prefill.Length];
        for (var row = 0; row < b.Batch.Length; row++)
        {
            var batch = b.Batch[row];
            for (var j = 0; j < b.Decode.Length; j++)
            {
                var name = cells.Name(cells.Step(row, j));
                int cmin = (b.DecodeLowerEdge(j) / batch) + 1, cmax = b.Decode[j] / batch;
                if (cmin > cmax)
                {
                    unreachable.Add((name, $"no batch of {batch} rows has a total of KV blocks in {b.DecodeLowerEdge(j) + 1}..{b.Decode[j]} (always a multiple of {batch})"));
                    continue;
                }

                // Lengths (tokens) of each row whose blocks put the batch in this bucket, and room under the KV capacity and max_model_len.
                int lower = (cmin - 1) * bs, edge = cmax * bs;
                var room = Math.Min(scheduler.MaxSequence, (scheduler.KvCapacityBlocks / batch) * bs);
                edge = Math.Min(edge, room);
                var (input, shortOut, longOut) = ProfilingPlanner.Pair(lower, edge, pm, offset, maxSpan);
                if (input < 1 || shortOut < 1 || longOut <= shortOut || scheduler.CheckRequest(input, longOut) is not null ||
                    (long)batch * scheduler.BlocksNeeded(input, longOut) > scheduler.KvCapacityBlocks)
                {
                    unreachable.Add((name, $"{batch} rows of {lower + 1}..{cmax * bs} tokens do not fit the KV capacity of {scheduler.KvCapacityBlocks} blocks " +
                                           $"and I + O <= {scheduler.MaxSequence} with two requests that differ in steps inside it"));
                    continue;
                }

                var id = new BucketId(BucketKind.Decode, b.Decode[j], batch);
                if (shortOut == 1 && row == 0)
                {
                    covered[b.PrefillIndex(input)] = true;
                }

                points.Add(new PlanRow(id, input, shortOut, 0, shortOut == 1 ? PlanRole.Intercept : PlanRole.Base, batch));
                points.Add(new PlanRow(id, input, longOut, 0, PlanRole.Slope, batch));
            }
        }

        for (var i = 0; i < covered.Length; i++)
        {
            int lower = b.PrefillLowerEdge(i), top = Math.Min(b.Prefill[i], scheduler.MaxSequence - 1);
            if (covered[i] || lower + 1 > top)
            {
                continue;
            }

            var id = new BucketId(BucketKind.Prefill, b.Prefill[i]);
            points.Add(new PlanRow(id, lower + 1, 1, 0, PlanRole.Prefill, b.Batch[0]));
            if (top > lower + 1)
            {
                points.Add(new PlanRow(id, top, 1, 0, PlanRole.Prefill, b.Batch[0]));
            }
        }

        return points;
    }

    private static List<PlanRow> ChunkedPoints(PolicyScheduler scheduler, int? maxSpan, List<(string, string)> unreachable)
    {
        var b = scheduler.Buckets;
        var cells = scheduler.Cells;
        var policy = scheduler.Policy;
        var tokens = policy.TokenBuckets;
        var budget = policy.MaxNumBatchedTokens;
        var top = scheduler.MaxSequence;
        var points = new List<PlanRow>();
        void Add(PlanRow row) => points.Add(row);

        for (var t = 0; t < tokens.Length; t++)
        {
            var tokenLower = t == 0 ? 0 : tokens[t - 1];
            if (tokenLower >= budget)
            {
                for (var k = 0; k < b.Decode.Length; k++)
                {
                    unreachable.Add((cells.Name(cells.Step(t, k)), $"token bucket {tokens[t]}: a step schedules at most max_num_batched_tokens = {budget} tokens"));
                }

                continue;
            }

            // Decode pairs: n sequences decoding run steps of n tokens, row bucket(n), at the context bucket of their length.
            var n = Math.Min(tokens[t], policy.MaxNumSeqs);
            if (n <= tokenLower)
            {
                continue;
            }

            for (var k = 0; k < b.Decode.Length; k++)
            {
                int lower = b.DecodeLowerEdge(k), edge = Math.Min(b.Decode[k], top);
                var input = lower + 1;
                var longOut = edge - input;
                if (maxSpan is { } span)
                {
                    longOut = Math.Min(longOut, 1 + span);
                }

                if (longOut < 2)
                {
                    continue; // too narrow for a decode step inside it; the prompt-only releases below may still reach it
                }

                var id = new BucketId(BucketKind.Decode, b.Decode[k], n);
                Add(new PlanRow(id, input, 1, 0, PlanRole.Intercept, n));
                Add(new PlanRow(id, input, longOut, 0, PlanRole.Slope, n));
            }
        }

        // Prompt-only releases, two for every cell where they can (the plateau's ends): n prompts of I tokens run ceil(n I / budget) steps, full
        // but the last, whose tokens are n I less the full budgets before it and whose context is I.
        for (var t = 0; t < tokens.Length; t++)
        {
            var tokenLower = t == 0 ? 0 : tokens[t - 1];
            for (var k = 0; k < b.Decode.Length && tokenLower < budget; k++)
            {
                var own = 0;
                int lower = b.DecodeLowerEdge(k), edge = Math.Min(b.Decode[k], top - 1);
                for (var n = 1; n <= policy.MaxNumSeqs && own < 2; n++)
                {
                    var fits = Enumerable.Range(lower + 1, Math.Max(0, edge - lower)).Where(i =>
                    {
                        var last = (int)((((long)n * i) - 1) % budget) + 1;
                        return last > tokenLower && last <= tokens[t];
                    }).ToArray();
                    foreach (var i in fits.Length == 0 ? [] : fits.Length == 1 ? [fits[0]] : new[] { fits[0], fits[^1] })
                    {
                        if (own++ < 2)
                        {
                            Add(new PlanRow(new BucketId(BucketKind.Decode, b.Decode[k], n), i, 1, 0, PlanRole.Prefill, n));
                        }
                    }
                }
            }
        }

        return points;
    }
}
