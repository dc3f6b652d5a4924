namespace Lens.Core;

/// <summary>
/// One timed request: <paramref name="InputLength"/> prompt tokens, <paramref name="OutputLength"/> output tokens (the first one
/// produced by prefill), its end-to-end latency and, when the backend streams, its time to first token.
/// <paramref name="Bucket"/> names the bucket whose profile the request belongs to; null means "infer from the lengths".
/// <paramref name="Batch"/> is the size of the group of identical requests released at once that it was part of (1: alone), and
/// <paramref name="Group"/> identifies that group (null: unknown, each row stands alone); a grouped request's times run from the
/// group's release (method.md, "Batched serving").
/// </summary>
public readonly record struct MeasuredRequest(
    int InputLength, int OutputLength, double E2eMs, double? TtftMs = null, BucketId? Bucket = null, int Batch = 1, long? Group = null);

/// <summary>A request to predict: prompt and output lengths.</summary>
public readonly record struct RequestPair(int InputLength, int OutputLength);

/// <summary>Rules about groups of requests released at once (method.md, "Batched serving").</summary>
public static class MeasurementGroups
{
    /// <summary>
    /// Indexes of the rows whose group is not whole: the rows sharing its <see cref="MeasuredRequest.Group"/> are not exactly its
    /// <see cref="MeasuredRequest.Batch"/> (an interrupted group). Such a group's end is not the group's end, so it must never be fitted.
    /// </summary>
    public static IReadOnlyList<int> PartialRows(IReadOnlyList<MeasuredRequest> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var counts = new Dictionary<long, int>();
        foreach (var m in rows)
        {
            if (m.Group is { } g)
            {
                counts[g] = counts.GetValueOrDefault(g) + 1;
            }
        }

        var partial = new List<int>();
        for (var n = 0; n < rows.Count; n++)
        {
            if (rows[n].Group is { } g && counts[g] != rows[n].Batch)
            {
                partial.Add(n);
            }
        }

        return partial;
    }

    /// <summary>How many rows carry group <paramref name="group"/>.</summary>
    public static int RowsOf(IReadOnlyList<MeasuredRequest> rows, long group) => rows.Count(m => m.Group == group);
}
