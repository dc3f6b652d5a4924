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
        var subsets = new SubsetFits(points, batched, lengthScale, batchScale);
        int bestMask = 0;
        double bestLobo = double.PositiveInfinity;
        for (var mask = 1; mask < 1 << Basis(batched).Length; mask++)
        {
            if (BitCount(mask) > points.Count - 1)
            {
                continue; // no bucket to spare for the leave-one-out error
            }

            var (lobo, _) = subsets.LeaveOneOut(mask);
            if (lobo < bestLobo - 1e-12 || (lobo <= bestLobo + 1e-12 && BitCount(mask) < BitCount(bestMask)))
            {
                (bestMask, bestLobo) = (mask, lobo);
            }
        }

        // Too few buckets for the line to leave one out (two; with a batch axis, four or fewer): only smaller forms competed. The line
        // is kept unless one of them predicted every left-out bucket exactly.
        if (bestMask == 0 || (bestLobo > 1e-9 && BitCount(line) > points.Count - 1))
        {
            bestMask = line;
        }

        return subsets.Curve(bestMask);
    }

    /// <summary>Fits the form of <paramref name="mask"/>'s terms and its leave-one-bucket-out error.</summary>
    public static CostCurve FitForm(IReadOnlyList<CostPoint> points, int mask, bool batched, double lengthScale, double batchScale)
    {
        ArgumentNullException.ThrowIfNull(points);
        return new SubsetFits(points, batched, lengthScale, batchScale).Curve(mask);
    }

    private static int BitCount(int mask) => System.Numerics.BitOperations.PopCount((uint)mask);

    /// <summary>
    /// The unconstrained least-squares fit on relative error of every subset of the basis, on all the points and with each point
    /// left out, each solved once (lazily): a form's non-negative fit is the best feasible one among its subsets, so the forms, their
    /// leave-one-bucket-out errors and the chosen curve all read from these instead of solving the same subsets again.
    /// </summary>
    private sealed class SubsetFits
    {
        private readonly IReadOnlyList<CostPoint> _points;
        private readonly bool _batched;
        private readonly double _lengthScale;
        private readonly double _batchScale;
        private readonly int _terms;
        private readonly double[][] _rows; // each point's features, scaled by 1 / y
        private readonly Fit?[]?[] _fits;   // [skip + 1][subset]; skip -1: every point

        public SubsetFits(IReadOnlyList<CostPoint> points, bool batched, double lengthScale, double batchScale)
        {
            (_points, _batched, _lengthScale, _batchScale) = (points, batched, lengthScale, batchScale);
            _terms = Basis(batched).Length;
            _rows = [.. points.Select(p => Features(batched, p.Edge / lengthScale, p.Batch / batchScale).Select(v => v / p.Ms).ToArray())];
            _fits = new Fit?[]?[points.Count + 1];
        }

        /// <summary>Leave-one-bucket-out mean and largest relative error of the form <paramref name="mask"/>.</summary>
        public (double Mean, double Max) LeaveOneOut(int mask)
        {
            double sum = 0, worst = 0;
            for (var i = 0; i < _points.Count; i++)
            {
                var left = Best(mask, skip: i);
                var phi = Features(_batched, _points[i].Edge / _lengthScale, _points[i].Batch / _batchScale);
                var predicted = 0.0;
                for (var t = 0; t < _terms; t++)
                {
                    predicted += left.Coefficients[t] * phi[t];
                }

                var error = Math.Abs(predicted - _points[i].Ms) / _points[i].Ms;
                sum += error;
                worst = Math.Max(worst, error);
            }

            return (sum / _points.Count, worst);
        }

        /// <summary>The curve of the form <paramref name="mask"/> on every point, with its covariance and leave-one-bucket-out error.</summary>
        public CostCurve Curve(int mask)
        {
            var best = Best(mask, skip: -1);
            var dof = _points.Count - BitCount(best.Subset);
            var s2 = dof > 0 ? best.Rss / dof : 0;
            var covariance = new double[_terms * _terms];
            if (s2 > 0)
            {
                var inverse = best.X.TransposeThisAndMultiply(best.X).Inverse() * s2;
                var free = Enumerable.Range(0, _terms).Where(t => (best.Subset & (1 << t)) != 0).ToArray();
                for (var r = 0; r < free.Length; r++)
                {
                    for (var c = 0; c < free.Length; c++)
                    {
                        covariance[(free[r] * _terms) + free[c]] = inverse[r, c];
                    }
                }
            }

            double? mape = null, max = null;
            if (_points.Count - 1 >= BitCount(mask))
            {
                (mape, max) = LeaveOneOut(mask);
            }

            return new CostCurve(mask, best.Coefficients, covariance, Math.Sqrt(s2), _points.Count, mape, max, _batched, _lengthScale,
                _batchScale);
        }

        /// <summary>
        /// The non-negative least squares over <paramref name="mask"/>'s terms, point <paramref name="skip"/> left out: the feasible
        /// subset with the least residual (fewer terms on a tie, as an exact fit by several subsets).
        /// </summary>
        private Fit Best(int mask, int skip)
        {
            var fits = _fits[skip + 1] ??= new Fit?[1 << _terms];
            Fit? best = null;
            for (var sub = mask; sub > 0; sub = (sub - 1) & mask)
            {
                var fit = fits[sub] ??= Solve(sub, skip);
                if (!fit.Feasible)
                {
                    continue;
                }

                if (best is null || fit.Rss < best.Rss - 1e-15 || (fit.Rss <= best.Rss + 1e-15 && BitCount(sub) < BitCount(best.Subset)))
                {
                    best = fit;
                }
            }

            return best ?? throw new ArgumentException("no non-negative curve fits the buckets' costs");
        }

        /// <summary>The unconstrained fit of subset <paramref name="sub"/>; infeasible when rank-deficient, underdetermined or negative.</summary>
        private Fit Solve(int sub, int skip)
        {
            var columns = Enumerable.Range(0, _terms).Where(t => (sub & (1 << t)) != 0).ToArray();
            var n = _points.Count - (skip >= 0 ? 1 : 0);
            if (columns.Length > n)
            {
                return Fit.Infeasible(sub);
            }

            var x = Matrix<double>.Build.Dense(n, columns.Length);
            for (int i = 0, r = 0; i < _points.Count; i++)
            {
                if (i == skip)
                {
                    continue;
                }

                for (var c = 0; c < columns.Length; c++)
                {
                    x[r, c] = _rows[i][columns[c]];
                }

                r++;
            }

            var y = Vector<double>.Build.Dense(n, 1.0);
            var qr = x.QR();
            if (!qr.IsFullRank)
            {
                return Fit.Infeasible(sub);
            }

            var b = qr.Solve(y);
            if (b.Any(v => v < -1e-12))
            {
                return Fit.Infeasible(sub);
            }

            var residual = y - (x * b);
            var coefficients = new double[_terms];
            for (var c = 0; c < columns.Length; c++)
            {
                coefficients[columns[c]] = Math.Max(0, b[c]);
            }

            return new Fit(sub, true, coefficients, residual.DotProduct(residual), x);
        }

        private sealed record Fit(int Subset, bool Feasible, double[] Coefficients, double Rss, Matrix<double> X)
        {
            public static Fit Infeasible(int subset) => new(subset, false, [], double.PositiveInfinity, null!);
        }
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
