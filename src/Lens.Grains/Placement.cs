using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// Places measurements sent in (imports, telemetry) in buckets, checking every one first so that a bad batch stores nothing.
/// Buckets not named are inferred by Core's <see cref="MeasurementTagger.Assign"/>. Under a scheduling policy other than prefill-first
/// padded the model is one fit over every bucket's measurements, so a bucket only says where a measurement is kept: a named one is
/// kept in its cell (<see cref="Cell"/>), an unnamed one in the cell of its whole length; identical rows of a group always land together.
/// </summary>
internal static class Placement
{
    public static BucketId[] Place(BucketSet buckets, MeasurementBatch batch, int maxBatch) => Place(buckets, SchedulingPolicy.Default, batch, maxBatch);

    public static BucketId[] Place(BucketSet buckets, SchedulingPolicy policy, MeasurementBatch batch, int maxBatch)
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

        var scheduler = policy.IsDefault ? null : PolicyScheduler.For(buckets, policy);
        var errors = new Dictionary<string, string[]>();
        for (var i = 0; i < items.Length; i++)
        {
            var m = items[i];
            var reason = m is null ? "missing"
                : (scheduler is null ? buckets.CheckRequest(m.InputLength, m.OutputLength) : scheduler.CheckRequest(m.InputLength, m.OutputLength)) ??
                  MeasurementRecord.CheckValues(m.E2eMs, m.TtftMs);
            if (reason is null && m!.Bucket is { } named &&
                (!BucketId.TryParse(named, out var id) || !buckets.Contains(scheduler is null ? id : Cell(buckets, id))))
            {
                reason = $"bucket '{named}' is not in the deployment's bucket set {buckets}";
            }

            if (reason is null && scheduler is not null && m!.Batch is var n && (n < 1 || n > scheduler.MaxNumSeqs))
            {
                reason = $"batch {n} is outside 1..{scheduler.MaxNumSeqs}: a group's requests are in flight together (max_num_seqs)";
            }
            else if (reason is null && scheduler is null && (buckets.BatchIndex(m!.Batch) is var b && (b < 0 || buckets.Batch[b] != m.Batch)))
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

        return scheduler is null ? MeasurementTagger.Assign(buckets, measurements) : [.. measurements.Select(m => Keep(scheduler, m))];
    }

    /// <summary>
    /// The cell that keeps a measurement tagged <paramref name="bucket"/> under a policy: a decode bucket's batch is the group's size,
    /// kept in the step table's row at or above it (a chunked plan's group of <c>n</c> in the row of its token bucket; the last row
    /// when <c>n</c> is above every row). A prefill bucket is itself.
    /// </summary>
    public static BucketId Cell(BucketSet buckets, BucketId bucket)
    {
        if (bucket.Kind == BucketKind.Prefill)
        {
            return bucket;
        }

        var row = buckets.BatchIndex(bucket.Batch);
        return bucket with { Batch = buckets.Batch[row < 0 ? buckets.Batch.Length - 1 : row] };
    }

    /// <summary>Where a measurement is kept under a policy: its tag's cell, or the column of its whole length (paged: the group's KV
    /// blocks) in the row of its group's size.</summary>
    private static BucketId Keep(PolicyScheduler scheduler, Core.MeasuredRequest m)
    {
        var buckets = scheduler.Buckets;
        if (m.Bucket is { } named)
        {
            return Cell(buckets, named);
        }

        long length = m.InputLength + m.OutputLength;
        if (scheduler.Policy.Execution == ExecutionKind.Paged)
        {
            length = (long)m.Batch * scheduler.BlocksNeeded(m.InputLength, m.OutputLength);
        }

        var column = buckets.DecodeIndex((int)Math.Min(length, int.MaxValue));
        return Cell(buckets, new BucketId(BucketKind.Decode, buckets.Decode[column < 0 ? buckets.Decode.Length - 1 : column], m.Batch));
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
