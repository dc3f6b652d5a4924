namespace Lens.Core;

/// <summary>A summary of one cost curve for the model file and reports.</summary>
/// <param name="Form">The chosen terms, e.g. <c>L + L^2</c> (L: the edge, B: the batch bucket).</param>
/// <param name="Terms">The curve's terms (L: the edge, B: the batch bucket) and their coefficients (ms at <c>L / LengthScale</c>,
/// <c>B / BatchScale</c>).</param>
/// <param name="Points">Profiled buckets fitted.</param>
/// <param name="LoboMape">Leave-one-bucket-out mean relative error (null: too few buckets).</param>
/// <param name="LoboMax">Leave-one-bucket-out largest relative error.</param>
/// <param name="RelativeResidual">Residual standard deviation of relative error.</param>
public sealed record CurveSummary(string Form, IReadOnlyDictionary<string, double> Terms, double LengthScale, double BatchScale, int Points,
    double? LoboMape, double? LoboMax, double RelativeResidual)
{
    public static CurveSummary Of(CostCurve curve)
    {
        ArgumentNullException.ThrowIfNull(curve);
        return new(curve.Form,
            curve.Terms.Select((t, k) => (t, k)).ToDictionary(x => x.t, x => curve.Coefficients[x.k]), curve.LengthScale, curve.BatchScale,
            curve.Points, curve.LoboMape, curve.LoboMax, curve.RelativeResidual);
    }
}

/// <summary>
/// The <c>predicted</c> block of a what-if model file: the model was not profiled but read from the curves of
/// <paramref name="Source"/>'s profile (bucket set <paramref name="SourceBuckets"/>); its buckets' intervals are widened by the
/// curves' prediction errors. Readers that do not know it ignore it.
/// </summary>
public sealed record PredictedBlock(string Source, string SourceBuckets, CurveSummary Prefill, CurveSummary Decode, CurveSummary? Ttft,
    IReadOnlyList<string> ProfiledBuckets);

/// <summary>A bucket set the profile cannot support (an edge or a batch bucket too far beyond the profiled ones).</summary>
public sealed class WhatIfRangeException(BucketKind kind, bool isBatch, string message) : ArgumentException(message)
{
    public BucketKind Kind { get; } = kind;

    /// <summary>Whether the batch buckets are at fault (else the prefill or decode edges, by <see cref="Kind"/>).</summary>
    public bool IsBatch { get; } = isBatch;
}

/// <summary>
/// What-if models: a <see cref="DeploymentModel"/> for a bucket set that was never profiled, every bucket's cost read from
/// <see cref="BucketCostModel"/> (its own value where the source profiled it), with the source's statistic, noise and interval
/// calibration; the fit standard errors of predicted buckets carry the curves' prediction error, so intervals widen away from the
/// profiled edges.
/// </summary>
public static class WhatIfModels
{
    /// <summary>The model of <paramref name="buckets"/>; throws <see cref="WhatIfRangeException"/> beyond the profile's support.</summary>
    public static DeploymentModel Predict(BucketCostModel costs, BucketSet buckets)
    {
        ArgumentNullException.ThrowIfNull(costs);
        ArgumentNullException.ThrowIfNull(buckets);
        if (costs.CheckBuckets(buckets) is { } bad)
        {
            throw new WhatIfRangeException(bad.Kind, bad.IsBatch, bad.Reason);
        }

        var prefill = buckets.Prefill.Select(p =>
        {
            var a = costs.PrefillCost(p);
            var t = costs.TtftCost(p);
            return new PrefillValues(p, a.Ms, a.StandardError, t.Ms, t.StandardError, double.NaN);
        }).ToArray();
        var decode = buckets.Batch.SelectMany(b => buckets.Decode.Select(d =>
        {
            var s = costs.StepCost(d, b);
            return new DecodeValues(d, s.Ms, s.StandardError, b);
        })).ToArray();
        var source = costs.Source;
        return new DeploymentModel(buckets, prefill, decode, source.Statistic, source.RelativeNoise, source.Calibration);
    }

    /// <summary>The <c>predicted</c> block that marks a what-if model of <paramref name="buckets"/> read from <paramref name="costs"/>.</summary>
    public static PredictedBlock Describe(BucketCostModel costs, BucketSet buckets, string source)
    {
        ArgumentNullException.ThrowIfNull(costs);
        ArgumentNullException.ThrowIfNull(buckets);
        var profiled = buckets.AllBuckets().Where(b => b.Kind == BucketKind.Prefill
            ? !costs.PrefillCost(b.Edge).Predicted
            : !costs.StepCost(b.Edge, b.Batch).Predicted).Select(b => b.ToString()).ToArray();
        return new PredictedBlock(source, costs.Source.Buckets.ToString(), CurveSummary.Of(costs.Prefill), CurveSummary.Of(costs.Decode),
            costs.Ttft is null ? null : CurveSummary.Of(costs.Ttft), profiled);
    }
}
