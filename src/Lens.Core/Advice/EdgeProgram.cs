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
