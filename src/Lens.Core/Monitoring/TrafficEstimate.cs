namespace Lens.Core;

/// <summary>
/// A cell's cost estimated from live traffic (method.md, "Live traffic"): the provenance of a cost that no profile measured.
/// </summary>
/// <param name="Cell">The prefill bucket, or decode bucket with its batch bucket.</param>
/// <param name="CostMs">The estimated cost: <c>A[p]</c> of a prefill bucket, <c>S[B, d]</c> of a decode cell.</param>
/// <param name="ProfiledMs">The cell's cost in the model before the estimate (its profile's).</param>
/// <param name="Steps">Steps of the cell the window's replay ran: what the estimate rests on.</param>
/// <param name="WindowStartMs">Earliest arrival of the window (Unix ms, as the spans give it).</param>
/// <param name="WindowEndMs">Latest arrival of the window.</param>
/// <param name="EstimatedAt">When the window was analysed.</param>
public sealed record TrafficEstimate(BucketId Cell, double CostMs, double ProfiledMs, long Steps, double WindowStartMs, double WindowEndMs,
    DateTimeOffset EstimatedAt)
{
    /// <summary>What is wrong with the estimate, or null: a positive finite cost, a finite profiled cost or NaN, steps, an ordered window.</summary>
    public string? Problem() =>
        !(double.IsFinite(CostMs) && CostMs > 0) ? $"costMs is {CostMs}; it must be a positive number of ms"
        : !(double.IsNaN(ProfiledMs) || (double.IsFinite(ProfiledMs) && ProfiledMs >= 0)) ? $"profiledMs is {ProfiledMs}; it must be 0 or more"
        : Steps < 0 ? $"steps is {Steps}; it must be 0 or more"
        : !(double.IsFinite(WindowStartMs) && double.IsFinite(WindowEndMs) && WindowStartMs <= WindowEndMs)
            ? $"the window {WindowStartMs}..{WindowEndMs} must be finite and in order"
        : null;
}

/// <summary>
/// Where each cost of a model came from: profiled (every cell by default), or estimated from traffic (<see cref="TrafficEstimate"/>,
/// kept in <see cref="DeploymentModel.Provenance"/> and written in the model file's <c>provenance</c> block).
/// </summary>
public static class ModelProvenance
{
    public const string Profiled = "profiled";
    public const string Traffic = "traffic";

    /// <summary>The source of <paramref name="cell"/>'s cost in <paramref name="model"/>: <see cref="Traffic"/> or <see cref="Profiled"/>.</summary>
    public static string SourceOf(this DeploymentModel model, BucketId cell)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Provenance.ContainsKey(cell) ? Traffic : Profiled;
    }

    /// <summary>
    /// The model with each estimate's cost written into its cell (a prefill bucket's TTFT scaled alike) and recorded as that cell's
    /// provenance; a later estimate of a cell replaces the earlier one. Throws <see cref="ArgumentException"/> for a cell not of the
    /// model or an invalid estimate.
    /// </summary>
    public static DeploymentModel WithTrafficEstimates(this DeploymentModel model, IEnumerable<TrafficEstimate> estimates)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(estimates);
        var buckets = model.Buckets;
        var prefill = model.PrefillBuckets.ToArray();
        var decode = model.DecodeBuckets.ToArray();
        var provenance = new Dictionary<BucketId, TrafficEstimate>(model.Provenance);
        var any = false;
        foreach (var e in estimates)
        {
            if (e.Problem() is { } problem)
            {
                throw new ArgumentException($"traffic estimate of {e.Cell}: {problem}", nameof(estimates));
            }

            var (kind, index) = Slot(buckets, e.Cell);
            if (kind == BucketKind.Prefill)
            {
                var p = prefill[index];
                var ratio = e.CostMs / p.AMs;
                prefill[index] = p with { AMs = e.CostMs, TtftMs = double.IsFinite(ratio) ? p.TtftMs * ratio : p.TtftMs };
            }
            else
            {
                decode[index] = decode[index] with { StepMs = e.CostMs };
            }

            provenance[e.Cell] = e;
            any = true;
        }

        return any
            ? Carry(model, new DeploymentModel(buckets, prefill, decode, model.Statistic, model.RelativeNoise, model.Calibration) { Provenance = provenance })
            : model;
    }

    /// <summary>The model with <paramref name="provenance"/> attached as it is (its costs already in the table: a model file read back).</summary>
    internal static DeploymentModel WithProvenance(this DeploymentModel model, IReadOnlyDictionary<BucketId, TrafficEstimate> provenance)
    {
        foreach (var (cell, e) in provenance)
        {
            _ = Slot(model.Buckets, cell);
            if (e.Cell != cell || e.Problem() is { } problem)
            {
                throw new ArgumentException($"provenance of {cell}: {(e.Cell != cell ? $"names {e.Cell}" : e.Problem())}");
            }
        }

        return provenance.Count == 0
            ? model
            : Carry(model, new DeploymentModel(model.Buckets, model.PrefillBuckets, model.DecodeBuckets, model.Statistic, model.RelativeNoise,
                model.Calibration) { Provenance = new Dictionary<BucketId, TrafficEstimate>(provenance) });
    }

    /// <summary><paramref name="to"/> with <paramref name="from"/>'s layout and policy (which carry the provenance along).</summary>
    private static DeploymentModel Carry(DeploymentModel from, DeploymentModel to)
    {
        to = from.Layout.IsDefault ? to : to.WithLayout(from.Layout);
        return from.Policy.IsDefault ? to : to.WithPolicy(from.Policy);
    }

    private static (BucketKind Kind, int Index) Slot(BucketSet buckets, BucketId cell)
    {
        if (!buckets.Contains(cell))
        {
            throw new ArgumentException($"{cell} is not a cell of the model ({buckets})");
        }

        return cell.Kind == BucketKind.Prefill
            ? (BucketKind.Prefill, buckets.PrefillIndex(cell.Edge))
            : (BucketKind.Decode, (buckets.BatchIndex(cell.Batch) * buckets.Decode.Length) + buckets.DecodeIndex(cell.Edge));
    }
}
