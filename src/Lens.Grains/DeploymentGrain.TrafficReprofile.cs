using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// A cost cell flagged by the live-traffic monitor, re-profiled alone (method.md, "Live traffic"; <see cref="LensGrainOptions.ReprofileFlaggedCells"/>,
/// which the monitor checks): a single-bucket run (<see cref="StartRunAsync"/>) of the plan rows that measure the cell, groups of its
/// batch bucket for a batched deployment. The run carries the cell (<see cref="ProfileRun.Cell"/>), so that its commit drops the cell's
/// traffic estimate and clears its stale mark even when the rows are another bucket's (a prefill bucket measured by a decode pair).
/// </summary>
public sealed partial class DeploymentGrain
{
    public async Task<ProfileProgress?> ReprofileCellAsync(string cell)
    {
        var spec = await SpecAsync();
        var buckets = spec.ToBucketSet();
        if (!BucketId.TryParse(cell, out var id) || !buckets.Contains(id))
        {
            var shown = cell is { Length: > 64 } ? cell[..64] + "..." : cell;
            throw LensException.Validation("cell", $"'{shown}' is not a cell of the deployment ({buckets})");
        }

        // A run unfinished (a profile, a drift re-profile, another cell's): nothing now; the monitor asks again while it still flags it.
        if (IsRunning || spec.CreatePlan().ReprofileTarget(id) is not { } target)
        {
            return null;
        }

        await BucketGrain(target).SetStaleAsync(true); // the cell's own bucket the monitor marked; the run's commit clears both
        var progress = await StartRunAsync(spec, target.ToString(), id.ToString());
        GrainLog.TrafficReprofile(logger, _key.Deployment, _key.DeviceKey.Format(), id.ToString(), target.ToString(), progress.RunId!);
        LensTelemetry.Reprofiles.Add(1, LensTelemetry.Deployment(_key.Tenant, _key.Device, _key.Deployment), LensTelemetry.Bucket(id.ToString()),
            LensTelemetry.Source(LensTelemetry.TrafficSource));
        return progress;
    }

    /// <summary>
    /// At the commit of <paramref name="committed"/> in <paramref name="run"/>: a flagged cell the run re-profiled through another
    /// bucket's rows (a prefill bucket through its decode pair) is measured again too, so its traffic estimate goes and it is no
    /// longer stale (the committed bucket's own estimate and mark are handled where every commit handles them).
    /// </summary>
    private async Task SettleCellAsync(ProfileRun run, BucketId committed)
    {
        if (run.Cell is not { } text || !BucketId.TryParse(text, out var cell) || cell == committed)
        {
            return;
        }

        ForgetEstimate(cell);
        await BucketGrain(cell).SetStaleAsync(false);
    }
}
