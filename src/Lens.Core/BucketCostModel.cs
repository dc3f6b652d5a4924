using MathNet.Numerics.LinearAlgebra;

namespace Lens.Core;

/// <summary>One profiled bucket as a point of a cost curve: its edge, batch bucket (1 for prefill) and fitted cost (ms).</summary>
public readonly record struct CostPoint(int Edge, int Batch, double Ms);

/// <summary>
/// A bucket's cost as a function of its edge <c>L</c> (and batch bucket <c>B</c>), fitted by least squares on relative error
/// (rows weighted by <c>1 / y</c>, so a 1 ms bucket and a 100 ms bucket count alike) over the profiled buckets, with every
/// coefficient at least zero: costs are a fixed overhead plus work that grows with length and batch, so the curve is positive and
/// monotone non-decreasing in <c>L</c> and <c>B</c>. The terms are a subset of <c>1, L, L^2</c> (attention's quadratic term), and with
/// a batch axis <c>1, B, L, B L, L^2, B L^2</c>; the subset is the one whose leave-one-bucket-out error is lowest (fewer terms on a
/// tie), so the data choose between, say, a fixed overhead and a quadratic term, and few buckets do not overfit. The non-negative
/// least squares is exact: the optimum is the best feasible unconstrained fit over subsets of the chosen terms. Nothing in the basis
/// is tuned to an engine.
/// </summary>
/// <param name="TermMask">The chosen terms: bit <c>t</c> set when term <c>t</c> of <see cref="Terms"/> is in the form.</param>
/// <param name="Coefficients">Coefficients of the terms in <see cref="Terms"/> order (0 for terms outside the form or held at 0), over
/// scaled <c>L / LengthScale</c> and <c>B / BatchScale</c>.</param>
/// <param name="Covariance">Their covariance (row-major, terms x terms), <c>s^2 (X'WX)^-1</c> on the free terms, 0 on terms held at 0.</param>
/// <param name="RelativeResidual">Residual standard deviation of the relative error, <c>s</c> (0 when no degrees of freedom remain).</param>
/// <param name="Points">Profiled buckets fitted.</param>
/// <param name="LoboMape">Leave-one-bucket-out error: mean over buckets of <c>|f_-i(x_i) - y_i| / y_i</c>, each bucket predicted by
/// the same form fitted without it; null when too few buckets leave any out.</param>
/// <param name="LoboMax">The largest of those errors.</param>
/// <param name="Batched">Whether the curve has the batch axis (more than one distinct batch bucket among the points).</param>
/// <param name="LengthScale">Lengths are divided by this (the largest profiled edge) for a well-conditioned fit.</param>
/// <param name="BatchScale">Batch sizes are divided by this (the largest profiled batch bucket).</param>
public sealed record CostCurve(
    int TermMask,
    double[] Coefficients,
    double[] Covariance,
    double RelativeResidual,
    int Points,
    double? LoboMape,
    double? LoboMax,
    bool Batched,
    double LengthScale,
    double BatchScale)
{
    private static readonly string[] LengthTerms = ["1", "L", "L^2"];
    private static readonly string[] BatchedTerms = ["1", "B", "L", "B*L", "L^2", "B*L^2"];

    /// <summary>Names of every term of the basis, in coefficient order.</summary>
    public IReadOnlyList<string> Terms => Basis(Batched);

    /// <summary>The chosen form as its terms, e.g. <c>L + L^2</c>.</summary>
    public string Form => Describe(TermMask, Batched);

    /// <summary>The form of <paramref name="mask"/>'s terms, e.g. <c>1 + L</c>.</summary>
    public static string Describe(int mask, bool batched)
    {
        var names = Basis(batched);
        return string.Join(" + ", Enumerable.Range(0, names.Length).Where(t => (mask & (1 << t)) != 0).Select(t => names[t]));
    }

    /// <summary>The curve's cost at edge <paramref name="edge"/> and batch bucket <paramref name="batch"/>.</summary>
    public double Ms(int edge, int batch = 1)
    {
        var phi = Features(Batched, edge / LengthScale, batch / BatchScale);
        var sum = 0.0;
        for (var t = 0; t < phi.Length; t++)
        {
            sum += Coefficients[t] * phi[t];
        }

        return sum;
    }

    /// <summary>
    /// Standard error of one bucket's cost read from the curve at a length it was not profiled at: the curve's own uncertainty
    /// there (<c>phi' Cov phi</c>, which grows away from the profiled edges) and the scatter of buckets about the curve, as the larger of the
    /// fit's relative residual and its leave-one-bucket-out error.
    /// </summary>
    public double PredictionStandardError(int edge, int batch = 1)
    {
        var phi = Features(Batched, edge / LengthScale, batch / BatchScale);
        var variance = 0.0;
        for (var r = 0; r < phi.Length; r++)
        {
            for (var c = 0; c < phi.Length; c++)
            {
                variance += phi[r] * Covariance[(r * phi.Length) + c] * phi[c];
            }
        }

        var relative = Math.Max(RelativeResidual, LoboMape ?? 0) * Ms(edge, batch);
        return Math.Sqrt(Math.Max(0, variance) + (relative * relative));
    }

    /// <summary>
    /// Fits every subset of the basis that leaves a bucket to spare and keeps the one with the lowest leave-one-bucket-out error (fewer
    /// terms on a tie). With too few buckets for the line <c>1 + L</c> to leave one out, the line is kept unless a smaller form predicts
    /// every left-out bucket exactly. Needs at least two points with positive costs.
    /// </summary>
    /// <param name="what">Names the curve in errors (e.g. "prefill cost A(p)").</param>
    public static CostCurve Fit(IReadOnlyList<CostPoint> points, string what)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count < 2)
        {
            throw new ArgumentException($"{what}: a curve needs at least two fitted buckets; the model has {points.Count}");
        }

        foreach (var p in points)
        {
            if (!(p.Ms > 0) || !double.IsFinite(p.Ms) || p.Edge < 1 || p.Batch < 1)
            {
                throw new ArgumentException($"{what}: bucket at edge {p.Edge}, batch {p.Batch} has cost {p.Ms} ms; a curve needs positive costs");
            }
        }

        var batched = points.Select(p => p.Batch).Distinct().Count() > 1;
        double lengthScale = points.Max(p => p.Edge), batchScale = points.Max(p => p.Batch);
        var line = batched ? 0b1111 : 0b11; // 1 + L (+ B + B*L): the fallback when no form can leave a bucket out
        CostCurve? best = null;
        for (var mask = 1; mask < 1 << Basis(batched).Length; mask++)
        {
            if (BitCount(mask) > points.Count - 1)
            {
                continue; // no bucket to spare for the leave-one-out error
            }

            var curve = FitForm(points, mask, batched, lengthScale, batchScale);
            if (best is null || curve.LoboMape < best.LoboMape - 1e-12
                || (curve.LoboMape <= best.LoboMape + 1e-12 && BitCount(mask) < BitCount(best.TermMask)))
            {
                best = curve;
            }
        }

        // Too few buckets for the line to leave one out (two; with a batch axis, four or fewer): only smaller forms competed. The line
        // is kept unless one of them predicted every left-out bucket exactly.
        if (best is null || (best.LoboMape > 1e-9 && BitCount(line) > points.Count - 1))
        {
            return FitForm(points, line, batched, lengthScale, batchScale);
        }

        return best;
    }

    /// <summary>Fits the form of <paramref name="mask"/>'s terms and its leave-one-bucket-out error.</summary>
    public static CostCurve FitForm(IReadOnlyList<CostPoint> points, int mask, bool batched, double lengthScale, double batchScale)
    {
        ArgumentNullException.ThrowIfNull(points);
        var (coefficients, covariance, residual) = Solve(points, mask, batched, lengthScale, batchScale, skip: -1);
        var terms = coefficients.Length;
        double? mape = null, max = null;
        if (points.Count - 1 >= BitCount(mask))
        {
            double sum = 0, worst = 0;
            for (var i = 0; i < points.Count; i++)
            {
                var (left, _, _) = Solve(points, mask, batched, lengthScale, batchScale, skip: i);
                var phi = Features(batched, points[i].Edge / lengthScale, points[i].Batch / batchScale);
                var predicted = 0.0;
                for (var t = 0; t < terms; t++)
                {
                    predicted += left[t] * phi[t];
                }

                var error = Math.Abs(predicted - points[i].Ms) / points[i].Ms;
                sum += error;
                worst = Math.Max(worst, error);
            }

            (mape, max) = (sum / points.Count, worst);
        }

        return new CostCurve(mask, coefficients, covariance, residual, points.Count, mape, max, batched, lengthScale, batchScale);
    }

    private static int BitCount(int mask) => System.Numerics.BitOperations.PopCount((uint)mask);

    /// <summary>
    /// Non-negative least squares on relative error over <paramref name="mask"/>'s terms (the best feasible fit over its subsets);
    /// point <paramref name="skip"/> left out.
    /// </summary>
    private static (double[] Coefficients, double[] Covariance, double RelativeResidual) Solve(IReadOnlyList<CostPoint> points, int mask,
        bool batched, double lengthScale, double batchScale, int skip)
    {
        var terms = Basis(batched).Length;
        var rows = new List<double[]>(points.Count);
        for (var i = 0; i < points.Count; i++)
        {
            if (i != skip)
            {
                var p = points[i];
                rows.Add([.. Features(batched, p.Edge / lengthScale, p.Batch / batchScale).Select(v => v / p.Ms)]); // scaled by 1 / y
            }
        }

        double bestRss = double.PositiveInfinity;
        int bestMask = 0, bestSize = int.MaxValue;
        double[]? bestCoefficients = null;
        Matrix<double>? bestX = null;
        for (var sub = mask; sub > 0; sub = (sub - 1) & mask)
        {
            var columns = Enumerable.Range(0, terms).Where(t => (sub & (1 << t)) != 0).ToArray();
            if (columns.Length > rows.Count)
            {
                continue;
            }

            var x = Matrix<double>.Build.Dense(rows.Count, columns.Length, (r, c) => rows[r][columns[c]]);
            var y = Vector<double>.Build.Dense(rows.Count, 1.0);
            var qr = x.QR();
            if (!qr.IsFullRank)
            {
                continue;
            }

            var b = qr.Solve(y);
            if (b.Any(v => v < -1e-12))
            {
                continue;
            }

            var residual = y - (x * b);
            var rss = residual.DotProduct(residual);
            // Ties (an exact fit by several subsets): the fewer terms.
            if (rss < bestRss - 1e-15 || (rss <= bestRss + 1e-15 && columns.Length < bestSize))
            {
                (bestRss, bestMask, bestSize, bestX) = (rss, sub, columns.Length, x);
                bestCoefficients = new double[terms];
                for (var c = 0; c < columns.Length; c++)
                {
                    bestCoefficients[columns[c]] = Math.Max(0, b[c]);
                }
            }
        }

        if (bestCoefficients is null)
        {
            throw new ArgumentException("no non-negative curve fits the buckets' costs");
        }

        var dof = rows.Count - bestSize;
        var s2 = dof > 0 ? bestRss / dof : 0;
        var covariance = new double[terms * terms];
        if (s2 > 0)
        {
            var inverse = bestX!.TransposeThisAndMultiply(bestX).Inverse() * s2;
            var free = Enumerable.Range(0, terms).Where(t => (bestMask & (1 << t)) != 0).ToArray();
            for (var r = 0; r < free.Length; r++)
            {
                for (var c = 0; c < free.Length; c++)
                {
                    covariance[(free[r] * terms) + free[c]] = inverse[r, c];
                }
            }
        }

        return (bestCoefficients, covariance, Math.Sqrt(s2));
    }

    private static double[] Features(bool batched, double length, double batch) => batched
        ? [1, batch, length, batch * length, length * length, batch * length * length]
        : [1, length, length * length];

    private static string[] Basis(bool batched) => batched ? BatchedTerms : LengthTerms;
}

/// <summary>A bucket's cost and its standard error, and whether it was read from the curve (not profiled).</summary>
public readonly record struct BucketCost(double Ms, double StandardError, bool Predicted);

/// <summary>
/// How a deployment's bucket costs grow with the bucket's size, from one profiled model: <c>A(p)</c>, <c>S(B, D)</c> and TTFT as
/// <see cref="CostCurve"/>s over the profiled buckets. A bucket the model profiled keeps its own fitted value; any other is read from
/// the curve, with the curve's prediction standard error. Reading beyond <see cref="MaxLengthFactor"/> times the largest profiled
/// edge, or above the largest profiled batch bucket, is refused (<see cref="CheckBuckets"/>).
/// </summary>
public sealed class BucketCostModel
{
    /// <summary>How far beyond the largest profiled edge a curve may be read.</summary>
    public const double MaxLengthFactor = 1.5;

    private readonly Dictionary<int, PrefillValues> _prefill;
    private readonly Dictionary<(int Batch, int Edge), DecodeValues> _decode;

    public BucketCostModel(DeploymentModel source)
    {
        ArgumentNullException.ThrowIfNull(source);
        Source = source;
        _prefill = source.PrefillBuckets.Where(p => p.IsFitted && p.AMs > 0).ToDictionary(p => p.Edge);
        _decode = source.DecodeBuckets.Where(d => d.IsFitted && d.StepMs > 0).ToDictionary(d => (d.Batch, d.Edge));
        Prefill = CostCurve.Fit([.. _prefill.Values.Select(p => new CostPoint(p.Edge, 1, p.AMs))], "prefill cost A(p)");
        Decode = CostCurve.Fit([.. _decode.Values.Select(d => new CostPoint(d.Edge, d.Batch, d.StepMs))], "decode step cost S(B, D)");
        var ttft = _prefill.Values.Where(p => !double.IsNaN(p.TtftMs) && p.TtftMs > 0).ToArray();
        Ttft = ttft.Length >= 2 && ttft.Length == _prefill.Count
            ? CostCurve.Fit([.. ttft.Select(p => new CostPoint(p.Edge, 1, p.TtftMs))], "time to first token")
            : null;
        MaxPrefillEdge = (int)Math.Floor(MaxLengthFactor * _prefill.Keys.Max());
        MaxDecodeEdge = (int)Math.Floor(MaxLengthFactor * _decode.Keys.Max(k => k.Edge));
    }

    public DeploymentModel Source { get; }

    public CostCurve Prefill { get; }

    public CostCurve Decode { get; }

    /// <summary>The TTFT curve, when every fitted prefill bucket has a streamed TTFT; else null (TTFT is then A).</summary>
    public CostCurve? Ttft { get; }

    /// <summary>The largest prefill edge the curve may be read at.</summary>
    public int MaxPrefillEdge { get; }

    /// <summary>The largest decode edge the curve may be read at.</summary>
    public int MaxDecodeEdge { get; }

    /// <summary>The largest batch bucket the curve may be read at: the largest profiled one.</summary>
    public int MaxBatch => Source.Buckets.MaxBatch;

    /// <summary>Single requests decode at the smallest batch bucket.</summary>
    public int SingleBatch => Source.Buckets.Batch[0];

    /// <summary>Prefill cost of a bucket at <paramref name="edge"/>.</summary>
    public BucketCost PrefillCost(int edge) => _prefill.TryGetValue(edge, out var p)
        ? new BucketCost(p.AMs, p.AStandardError, false)
        : new BucketCost(Prefill.Ms(edge), Prefill.PredictionStandardError(edge), true);

    /// <summary>Decode step cost of a bucket at <paramref name="edge"/>, batch bucket <paramref name="batch"/>.</summary>
    public BucketCost StepCost(int edge, int batch) => _decode.TryGetValue((batch, edge), out var d)
        ? new BucketCost(d.StepMs, d.StepStandardError, false)
        : new BucketCost(Decode.Ms(edge, batch), Decode.PredictionStandardError(edge, batch), true);

    /// <summary>TTFT of a prefill bucket at <paramref name="edge"/> (NaN when the profile has no TTFT curve: it is then A).</summary>
    public BucketCost TtftCost(int edge) => _prefill.TryGetValue(edge, out var p) && !double.IsNaN(p.TtftMs)
        ? new BucketCost(p.TtftMs, p.TtftStandardError, false)
        : Ttft is null
            ? new BucketCost(double.NaN, 0, true)
            : new BucketCost(Ttft.Ms(edge), Ttft.PredictionStandardError(edge), true);

    /// <summary>
    /// Null when every bucket of <paramref name="buckets"/> is within what the profile supports, else which list is at fault and why,
    /// with the allowed range.
    /// </summary>
    public (BucketKind Kind, bool IsBatch, string Reason)? CheckBuckets(BucketSet buckets)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        if (buckets.MaxPrompt > MaxPrefillEdge)
        {
            return (BucketKind.Prefill, false,
                $"prefill bucket {buckets.MaxPrompt} is beyond {MaxLengthFactor}x the largest profiled prefill bucket {_prefill.Keys.Max()} " +
                $"(allowed 1..{MaxPrefillEdge}); profile longer buckets instead of extrapolating");
        }

        if (buckets.MaxSequence > MaxDecodeEdge)
        {
            return (BucketKind.Decode, false,
                $"decode bucket {buckets.MaxSequence} is beyond {MaxLengthFactor}x the largest profiled decode bucket " +
                $"{_decode.Keys.Max(k => k.Edge)} (allowed 1..{MaxDecodeEdge}); profile longer buckets instead of extrapolating");
        }

        if (buckets.MaxBatch > MaxBatch)
        {
            return (BucketKind.Decode, true,
                $"batch bucket {buckets.MaxBatch} is above the largest profiled batch bucket {MaxBatch} (allowed 1..{MaxBatch})");
        }

        return null;
    }
}
