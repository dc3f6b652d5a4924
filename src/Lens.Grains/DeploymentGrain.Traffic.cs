using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// Costs re-estimated from live traffic (method.md, "Live traffic"): the traffic monitor writes a flagged cell's estimate here; the
/// model the silos compose from the bucket fits takes it in place of the cell's fit (<see cref="ModelStamp.Estimates"/>), with its
/// provenance, until the cell's bucket is measured again.
/// </summary>
public sealed partial class DeploymentGrain
{
    /// <summary>Most estimates one call may write (a deployment has at most this many cells in practice).</summary>
    public const int MaxEstimatesPerCall = 4096;

    public async Task<long> ApplyTrafficEstimatesAsync(TrafficEstimateRecord[] estimates)
    {
        var spec = await SpecAsync();
        if (estimates is not { Length: > 0 and <= MaxEstimatesPerCall })
        {
            throw LensException.Validation("estimates", $"give 1..{MaxEstimatesPerCall} estimates; got {estimates?.Length ?? 0}");
        }

        var buckets = spec.ToBucketSet();
        var checkedEstimates = new List<TrafficEstimate>(estimates.Length);
        for (var i = 0; i < estimates.Length; i++)
        {
            if (estimates[i] is not { } e || !BucketId.TryParse(e.Cell, out var cell) || !buckets.Contains(cell))
            {
                throw LensException.Validation($"estimates[{i}].cell", $"'{estimates[i]?.Cell}' is not a cell of the deployment ({buckets})");
            }

            var estimate = e.ToCore();
            if (estimate.Problem() is { } problem)
            {
                throw LensException.Validation($"estimates[{i}]", problem);
            }

            checkedEstimates.Add(estimate);
        }

        var s = state.State;
        s.TrafficEstimates ??= new Dictionary<string, TrafficEstimateRecord>(StringComparer.Ordinal);
        foreach (var estimate in checkedEstimates)
        {
            s.TrafficEstimates[estimate.Cell.ToString()] = estimate.ToRecord();
        }

        s.ModelVersion++;
        try
        {
            await state.WriteStateAsync();
        }
        finally
        {
            await _models.ChangedAsync(s.ModelVersion);
        }

        return s.ModelVersion;
    }

    public Task<TrafficEstimateRecord[]> GetTrafficEstimatesAsync() => Task.FromResult(Estimates() ?? []);

    /// <summary>The estimates the model holds, ordered by cell; null when none.</summary>
    private TrafficEstimateRecord[]? Estimates() =>
        state.State.TrafficEstimates is { Count: > 0 } held ? [.. held.Values.OrderBy(e => e.Cell, StringComparer.Ordinal)] : null;

    /// <summary>A bucket whose fit changed (measured again) takes its cost from the fit again: its traffic estimate is dropped.</summary>
    private void ForgetEstimate(BucketId bucket) => state.State.TrafficEstimates?.Remove(bucket.ToString());
}
