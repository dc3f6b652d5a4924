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

            if (reason is null && (buckets.BatchIndex(m!.Batch) is var b && (b < 0 || buckets.Batch[b] != m.Batch)))
            {
                reason = $"batch {m.Batch} is not one of the deployment's batch buckets {string.Join(',', buckets.Batch)}";
            }

            if (reason is null && m!.Group is < 0)
            {
                reason = $"group {m.Group} must be a whole number from 0";
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

        var measurements = items.Select(m => new Core.MeasuredRequest(m.InputLength, m.OutputLength, m.E2eMs, m.TtftMs,
            m.Bucket is { } named ? BucketId.Parse(named) : null, m.Batch, m.Group)).ToArray();

        // A group's end is its last request's: a group sent in part (or split over two imports) would be fitted as a shorter one.
        if (MeasurementGroups.PartialRows(measurements) is [var first, ..])
        {
            var g = measurements[first].Group;
            throw LensException.Validation($"measurements[{first}]",
                $"group {g} has {measurements.Count(m => m.Group == g)} rows but batch {measurements[first].Batch}; send every request of a group in one import");
        }

        return MeasurementTagger.Assign(buckets, measurements);
    }

    /// <summary>
    /// A stored group id for group <paramref name="group"/> of the batch or run <paramref name="scope"/>: group ids are the caller's,
    /// so two imports that both use group 0 must not become one group in a bucket's fit.
    /// </summary>
    public static long? ScopedGroup(string scope, long? group) =>
        group is { } g
            ? BitConverter.ToInt64(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{scope}:{g}")), 0) & long.MaxValue
            : null;
}
