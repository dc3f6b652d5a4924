using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// Places measurements sent in (imports, telemetry) in buckets, checking every one first so that a bad batch stores nothing.
/// Buckets not named are inferred by Core's <see cref="MeasurementTagger.Assign"/>.
/// </summary>
internal static class Placement
{
    public static BucketId[] Place(BucketSet buckets, MeasurementBatch batch, int maxBatch)
    {
        if (batch?.Measurements is not { } items || items.Length == 0)
        {
            throw LensException.Validation("measurements", "measurements are required (at least one)");
        }

        if (items.Length > maxBatch)
        {
            throw LensException.Validation("measurements", $"{items.Length} measurements in one batch; at most {maxBatch} are allowed");
        }

        if (batch.Id is not null && LensNames.Check(batch.Id, "id") is { } idError)
        {
            throw LensException.Validation("id", idError);
        }

        var errors = new Dictionary<string, string[]>();
        for (var i = 0; i < items.Length; i++)
        {
            var m = items[i];
            var reason = m is null ? "missing" : buckets.CheckRequest(m.InputLength, m.OutputLength) ?? MeasurementRecord.CheckValues(m.E2eMs, m.TtftMs);
            if (reason is null && m!.Bucket is { } named && (!BucketId.TryParse(named, out var id) || !buckets.Contains(id)))
            {
                reason = $"bucket '{named}' is not in the deployment's bucket set {buckets}";
            }

            if (reason is not null && errors.Count < 20)
            {
                errors[$"measurements[{i}]"] = [reason];
            }
        }

        if (errors.Count > 0)
        {
            throw LensException.Validation(errors);
        }

        return MeasurementTagger.Assign(buckets,
            [.. items.Select(m => new Core.Measurement(m.InputLength, m.OutputLength, m.E2eMs, m.TtftMs,
                m.Bucket is { } named ? BucketId.Parse(named) : null))]);
    }
}
