using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// The model a deployment serves, composed where models are composed (the silo's <see cref="ModelCache"/> and the
/// <see cref="DeploymentMonitorGrain"/>): for prefill-first padded, today's composition of the buckets' own fits
/// (<see cref="DeploymentModel.Compose"/>); under any other scheduling policy, Core's one fit of every cell
/// (<see cref="PolicyFitter"/>) over all the deployment's measurements, gathered from its bucket grains. Cells the fit leaves
/// undetermined stay unfitted (NaN), as <c>lens fit</c> leaves them.
/// </summary>
internal static class DeploymentModels
{
    public static async Task<DeploymentModel> ComposeAsync(IGrainFactory grains, DeploymentKey key, BucketContext context,
        IReadOnlyList<BucketId> all, IReadOnlyList<BucketSnapshot> snapshots)
    {
        var buckets = context.ToBucketSet();
        var policy = context.ToPolicy();
        if (policy.IsDefault)
        {
            return DeploymentModel.Compose(buckets, snapshots.Select(s => s.ToFit()), context.ToStatistic());
        }

        var stored = await Task.WhenAll(all.Select(b => grains.GetGrain<IBucketGrain>(key.Bucket(b).Format()).GetMeasurementsAsync()));
        var rows = stored.SelectMany(r => r).Select(m => m.ToMeasurement()).ToArray();
        var statistic = context.ToStatistic();

        // The fit simulates every release under the policy: bounded by the buckets' stored measurements, but off the grain's turn.
        return await Task.Run(() => Fit(buckets, policy, rows, statistic));
    }

    /// <summary>Core's joint fit of whole groups only: a group a bucket's bound cut short would be fitted as a shorter release.</summary>
    public static DeploymentModel Fit(BucketSet buckets, SchedulingPolicy policy, IReadOnlyList<MeasuredRequest> rows, RepeatStatistic statistic)
    {
        var partial = MeasurementGroups.PartialRows(rows).ToHashSet();
        var whole = partial.Count == 0 ? rows : [.. rows.Where((_, i) => !partial.Contains(i))];
        return PolicyFitter.Fit(buckets, policy, whole, statistic).Model;
    }
}
