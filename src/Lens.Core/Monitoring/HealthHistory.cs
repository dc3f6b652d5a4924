namespace Lens.Core;

/// <summary>
/// One drift analysis of a deployment's window, compacted for its health history. Every array is aligned with the deployment's
/// buckets in <see cref="BucketSet.AllBuckets"/> order (fixed for a deployment: its bucket sets are part of its identity), so no
/// bucket name is repeated per entry.
/// </summary>
/// <param name="At">When the analysis ran (UTC).</param>
/// <param name="CommonShift">The shift every bucket shares (<see cref="DriftReport.CommonShift"/>).</param>
/// <param name="Drifting">Buckets flagged drifting by this analysis.</param>
/// <param name="Observations">Observations in the window that touched each bucket.</param>
/// <param name="MeanApe">Observed E2E MAPE per bucket (percent); null for a bucket no observation touched.</param>
/// <param name="Shift">Relative shift per bucket; null for a bucket no observation touched.</param>
/// <param name="Band">Noise band per bucket.</param>
/// <param name="ConsecutiveDrift">Analyses in a row that flagged each bucket, this one included (0: not flagged now).</param>
/// <param name="Stale">Whether each bucket was marked stale (awaiting its re-profile) when the analysis ran.</param>
public sealed record HealthSample(
    DateTimeOffset At,
    double CommonShift,
    int Drifting,
    int[] Observations,
    double?[] MeanApe,
    double?[] Shift,
    double[] Band,
    int[] ConsecutiveDrift,
    bool[] Stale);

/// <summary>
/// The bounded history of a deployment's drift analyses: what one entry holds, how many fit in one stored grain state, and the ring
/// that keeps the newest.
/// <para>
/// Size: Orleans' Azure Table grain storage splits a state over at most 15 properties of 64 KiB (binary) or 32 Ki characters
/// (string), so one state holds at most 491,520 characters of JSON. The history keeps its worst case under
/// <see cref="StateBudgetChars"/>: values are rounded and clamped so one bucket of one entry takes at most
/// <see cref="CharsPerBucket"/> characters, and one entry's own fields at most <see cref="CharsPerEntry"/>; the capacity follows
/// from the deployment's bucket count (<see cref="Capacity"/>).
/// </para>
/// </summary>
public static class HealthHistory
{
    /// <summary>Characters of JSON the stored history may take at most, well under the storage's 491,520.</summary>
    public const int StateBudgetChars = 400_000;

    /// <summary>
    /// Worst case of one bucket's values in one entry as JSON: observations and drift count (int, 11 each with the comma), MAPE
    /// (at most 99999.99, 9), shift (-99.9999, 9), band (99.9999, 8), stale (false, 6).
    /// </summary>
    public const int CharsPerBucket = 54;

    /// <summary>Worst case of one entry's own fields as JSON: property names, brackets, the time, the common shift and drift count.</summary>
    public const int CharsPerEntry = 256;

    /// <summary>Largest shift or band kept (9,900%); beyond it the bucket is off any chart anyway.</summary>
    public const double MaxShift = 99;

    /// <summary>Largest observed MAPE kept (percent).</summary>
    public const double MaxApe = 99_999;

    /// <summary>
    /// How many entries a deployment of <paramref name="bucketCount"/> buckets keeps: <paramref name="maxEntries"/>, fewer when its
    /// worst case would pass <see cref="StateBudgetChars"/> (0 for a deployment of more than about 7,400 buckets).
    /// </summary>
    public static int Capacity(int maxEntries, int bucketCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxEntries);
        ArgumentOutOfRangeException.ThrowIfNegative(bucketCount);
        var fit = StateBudgetChars / (CharsPerEntry + (long)CharsPerBucket * bucketCount);
        return (int)Math.Min(maxEntries, fit);
    }

    /// <summary>
    /// The entry of one window of live traffic over the deployment's cells (<paramref name="cells"/>, <see cref="BucketSet.AllBuckets"/>
    /// order): each cell's observations, shift and band, windows out of band running, and whether it is flagged (as stale); cells the
    /// window did not reach have no shift. Rounded and clamped as <see cref="Sample(DateTimeOffset, DriftReport, IReadOnlyList{int}, IReadOnlyList{bool})"/>.
    /// </summary>
    public static HealthSample TrafficSample(DateTimeOffset at, IReadOnlyList<BucketId> cells, TrafficWindowVerdict verdict)
    {
        ArgumentNullException.ThrowIfNull(cells);
        ArgumentNullException.ThrowIfNull(verdict);
        var byCell = verdict.Cells.ToDictionary(c => c.Health.Cell);
        var n = cells.Count;
        var observations = new int[n];
        var shift = new double?[n];
        var band = new double[n];
        var counts = new int[n];
        var flagged = new bool[n];
        for (var b = 0; b < n; b++)
        {
            if (byCell.TryGetValue(cells[b], out var v))
            {
                observations[b] = v.Health.Observations;
                shift[b] = v.Health.Observations > 0 && double.IsFinite(v.Health.Shift) ? Compact(v.Health.Shift) : null;
                band[b] = double.IsFinite(v.Band) ? Compact(v.Band) : MaxShift;
                counts[b] = v.ConsecutiveOutOfBand;
                flagged[b] = v.Flagged;
            }
        }

        var common = verdict.Report.CommonShift;
        return new HealthSample(at.ToUniversalTime(), double.IsFinite(common) ? Compact(common) : 0, flagged.Count(f => f), observations,
            new double?[n], shift, band, counts, flagged);
    }

    /// <summary>
    /// The entry of one analysis: <paramref name="report"/>'s per-bucket figures, with each bucket's consecutive drift count and
    /// staleness (both kept by the caller), rounded (shift and band to 0.01%, MAPE to 0.01 points) and clamped to the sizes
    /// <see cref="CharsPerBucket"/> assumes.
    /// </summary>
    public static HealthSample Sample(DateTimeOffset at, DriftReport report, IReadOnlyList<int> consecutiveDrift, IReadOnlyList<bool> stale)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(consecutiveDrift);
        ArgumentNullException.ThrowIfNull(stale);
        var n = report.Buckets.Count;
        if (consecutiveDrift.Count != n || stale.Count != n)
        {
            throw new ArgumentException($"drift counts ({consecutiveDrift.Count}) and stale flags ({stale.Count}) must match the report's {n} buckets");
        }

        var observations = new int[n];
        var ape = new double?[n];
        var shift = new double?[n];
        var band = new double[n];
        var counts = new int[n];
        var staleFlags = new bool[n];
        for (var b = 0; b < n; b++)
        {
            var h = report.Buckets[b];
            observations[b] = h.Observations;
            ape[b] = h.Observations > 0 && double.IsFinite(h.MeanApe) ? Math.Round(Math.Min(h.MeanApe, MaxApe), 2) : null;
            shift[b] = h.Observations > 0 && double.IsFinite(h.Shift) ? Compact(h.Shift) : null;
            band[b] = double.IsFinite(h.Band) ? Compact(h.Band) : MaxShift;
            counts[b] = Math.Max(0, consecutiveDrift[b]);
            staleFlags[b] = stale[b];
        }

        return new HealthSample(at.ToUniversalTime(), double.IsFinite(report.CommonShift) ? Compact(report.CommonShift) : 0,
            report.Buckets.Count(b => b.Drifting), observations, ape, shift, band, counts, staleFlags);
    }

    /// <summary>The ring after appending <paramref name="entry"/>: oldest first, the oldest dropped beyond <paramref name="capacity"/>.</summary>
    public static T[] Append<T>(IReadOnlyList<T> ring, T entry, int capacity)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        if (capacity == 0)
        {
            return [];
        }

        var keep = Math.Min(ring.Count, capacity - 1);
        return [.. ring.Skip(ring.Count - keep), entry];
    }

    /// <summary>The newest <paramref name="last"/> entries of a ring, oldest first (all when null).</summary>
    public static T[] Newest<T>(IReadOnlyList<T> ring, int? last)
    {
        ArgumentNullException.ThrowIfNull(ring);
        var take = last is { } k ? Math.Clamp(k, 0, ring.Count) : ring.Count;
        return [.. ring.Skip(ring.Count - take)];
    }

    private static double Compact(double value) => Math.Round(Math.Clamp(value, -MaxShift, MaxShift), 4);
}
