using Lens.Core;

namespace Lens.Measurement;

// Resuming: which rows of a plan an output file does not hold yet, in run order (the plan's interleaved order, round after round of
// the repeat multiplier). A file of single requests is matched row by row; a grouped file (batch buckets) group by group.
public sealed partial class ProfileRunner
{
    /// <summary>
    /// The rows of <paramref name="rows"/> (times <paramref name="repeatMultiplier"/>) that <paramref name="done"/> does not cover, in
    /// run order: each finished measurement covers one plan row of the same bucket, input and output length (a measurement without a
    /// bucket covers a row of any bucket with those lengths).
    /// </summary>
    public static IReadOnlyList<PlanRow> Pending(IReadOnlyList<PlanRow> rows, IEnumerable<MeasuredRequest> done, int repeatMultiplier = 1)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(done);
        var exact = new Dictionary<(BucketId, int, int), int>();
        var anyBucket = new Dictionary<(int, int), int>();
        foreach (var m in done)
        {
            if (m.Bucket is { } b)
            {
                exact[(b, m.InputLength, m.OutputLength)] = exact.GetValueOrDefault((b, m.InputLength, m.OutputLength)) + 1;
            }
            else
            {
                anyBucket[(m.InputLength, m.OutputLength)] = anyBucket.GetValueOrDefault((m.InputLength, m.OutputLength)) + 1;
            }
        }

        var pending = new List<PlanRow>();
        foreach (var row in Expand(rows, repeatMultiplier))
        {
            var key = (row.Bucket, row.InputLength, row.OutputLength);
            if (exact.TryGetValue(key, out var n) && n > 0)
            {
                exact[key] = n - 1;
            }
            else if (anyBucket.TryGetValue((row.InputLength, row.OutputLength), out var k) && k > 0)
            {
                anyBucket[(row.InputLength, row.OutputLength)] = k - 1;
            }
            else
            {
                pending.Add(row);
            }
        }

        return pending;
    }

    /// <summary>Whether a plan runs its rows as groups (it has batch buckets above 1): then every row gets a group id.</summary>
    public static bool IsGrouped(IReadOnlyList<PlanRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return rows.Any(r => r.Batch != 1);
    }

    /// <summary>
    /// The groups of a grouped plan (times <paramref name="repeatMultiplier"/>) that <paramref name="done"/> does not hold whole, in run
    /// order, each with its group id (round * rows + index). A group is done when the file holds exactly <c>b</c> rows with its id; those
    /// rows must match the plan row (bucket, lengths, batch), or the file belongs to another plan and this throws. Ids beyond the plan
    /// and rows without a group are other measurements: they cover nothing.
    /// </summary>
    public static IReadOnlyList<(PlanRow Row, long Group)> PendingGroups(IReadOnlyList<PlanRow> rows, IEnumerable<MeasuredRequest> done,
        int repeatMultiplier = 1)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(done);
        var total = (long)rows.Count * repeatMultiplier;
        var counts = new Dictionary<long, int>();
        foreach (var m in done)
        {
            if (m.Group is not { } g || g >= total)
            {
                continue;
            }

            var row = rows[(int)(g % rows.Count)];
            if (m.Bucket != row.Bucket || m.InputLength != row.InputLength || m.OutputLength != row.OutputLength || m.Batch != row.Batch)
            {
                throw new InvalidDataException(
                    $"the output file's group {g} is {m.Bucket} I = {m.InputLength}, O = {m.OutputLength}, batch {m.Batch}, but the plan's group " +
                    $"{g} is {row.Bucket} I = {row.InputLength}, O = {row.OutputLength}, batch {row.Batch}: the file was written for another plan. " +
                    "Write to a new file");
            }

            counts[g] = counts.GetValueOrDefault(g) + 1;
        }

        var pending = new List<(PlanRow, long)>();
        long id = 0;
        foreach (var row in Expand(rows, repeatMultiplier))
        {
            if (counts.GetValueOrDefault(id) != row.Batch)
            {
                pending.Add((row, id));
            }

            id++;
        }

        return pending;
    }

    private static IEnumerable<PlanRow> Expand(IReadOnlyList<PlanRow> rows, int repeatMultiplier)
    {
        for (var round = 0; round < repeatMultiplier; round++)
        {
            foreach (var row in rows)
            {
                yield return row;
            }
        }
    }
}
