using System.Globalization;
using Lens.Abstractions;
using Lens.WebConsole.Charts;

namespace Lens.WebConsole;

/// <summary>The monitoring page's charts over time, from a deployment's health history (shifts and MAPE in percent).</summary>
public static class HealthHistoryView
{
    /// <summary>
    /// The common shift as its own line, then one shift line per bucket that any analysis judged (observed), its points marked
    /// <c>stale</c> or <c>drifting</c> where they were; each point's title gives the shift, band, MAPE and drift count.
    /// </summary>
    public static TimeSeries[] Shifts(DeploymentHealthHistory history)
    {
        ArgumentNullException.ThrowIfNull(history);
        var entries = history.Entries;
        var lines = new List<TimeSeries> { new("common shift", "common", [.. entries.Select(e => (double?)(100 * e.CommonShift))]) };
        foreach (var b in Observed(history))
        {
            var name = history.Buckets[b];
            lines.Add(new TimeSeries(name, "bucket",
                [.. entries.Select(e => e.Shift.ElementAtOrDefault(b) * 100)],
                [.. entries.Select(e => e.Stale.ElementAtOrDefault(b) ? "stale" : e.ConsecutiveDrift.ElementAtOrDefault(b) > 0 ? "drifting" : null)],
                [.. entries.Select(e => Title(history, e, b))]));
        }

        return [.. lines];
    }

    /// <summary>Observed E2E MAPE per observed bucket over time.</summary>
    public static TimeSeries[] Errors(DeploymentHealthHistory history)
    {
        ArgumentNullException.ThrowIfNull(history);
        return [.. Observed(history).Select(b => new TimeSeries(history.Buckets[b], "bucket", [.. history.Entries.Select(e => e.MeanApe.ElementAtOrDefault(b))]))];
    }

    /// <summary>
    /// The noise band around the common shift at each analysis, from the median band of the buckets it judged (each bucket has its
    /// own band, shown in its points' titles): a bucket line outside it has left a typical band.
    /// </summary>
    public static (double[] Low, double[] High) Band(DeploymentHealthHistory history)
    {
        ArgumentNullException.ThrowIfNull(history);
        var half = history.Entries.Select(e =>
        {
            var bands = e.Band.Where((_, b) => e.Observations.ElementAtOrDefault(b) > 0).Order().ToArray();
            return bands.Length == 0 ? 0 : bands[bands.Length / 2];
        }).ToArray();
        return ([.. history.Entries.Select((e, i) => 100 * (e.CommonShift - half[i]))], [.. history.Entries.Select((e, i) => 100 * (e.CommonShift + half[i]))]);
    }

    /// <summary>
    /// The live-traffic heatmap: the windows of traffic in the history (entries of source <c>traffic</c>) as columns, the cells some
    /// window reached as rows, each cell's shift beyond the window's common shift in percent, outlined where the cell was flagged
    /// (its title says so, and that its re-profile started in that window when it did). Null when the history has no traffic window.
    /// </summary>
    public static (string[] Rows, string[] Columns, HeatCell[][] Cells)? TrafficHeatmap(DeploymentHealthHistory history)
    {
        ArgumentNullException.ThrowIfNull(history);
        var windows = history.Entries.Where(e => e.Source == "traffic").ToArray();
        if (windows.Length == 0)
        {
            return null;
        }

        var rows = Enumerable.Range(0, history.Buckets.Length).Where(b => windows.Any(e => e.Observations.ElementAtOrDefault(b) > 0)).ToArray();
        var columns = windows.Select(e => e.At.ToUniversalTime().ToString("HH:mm:ss", CultureInfo.InvariantCulture)).ToArray();
        var cells = rows.Select(b => windows.Select(e => e.Shift.ElementAtOrDefault(b) is { } shift
            ? new HeatCell(100 * (shift - e.CommonShift), e.Stale.ElementAtOrDefault(b),
                $"{history.Buckets[b]} at {Format.Time(e.At)}: {Format.Percent(shift - e.CommonShift)} beyond the common shift " +
                $"({Format.Percent(e.CommonShift)}), band ± {Format.Percent(e.Band.ElementAtOrDefault(b))}, " +
                $"{e.ConsecutiveDrift.ElementAtOrDefault(b)} windows running against it{(e.Stale.ElementAtOrDefault(b) ? ", FLAGGED" : "")}" +
                $"{(e.Reprofiling == history.Buckets[b] ? ", re-profile started" : "")}")
            : new HeatCell(null, false, null)).ToArray()).ToArray();
        return ([.. rows.Select(b => history.Buckets[b])], columns, cells);
    }

    /// <summary>Indices of the buckets some analysis of the history saw observations of.</summary>
    private static IEnumerable<int> Observed(DeploymentHealthHistory history) =>
        Enumerable.Range(0, history.Buckets.Length).Where(b => history.Entries.Any(e => e.Observations.ElementAtOrDefault(b) > 0));

    private static string? Title(DeploymentHealthHistory history, HealthHistoryEntry e, int b)
    {
        if (e.Shift.ElementAtOrDefault(b) is not { } shift)
        {
            return null;
        }

        var ape = e.MeanApe.ElementAtOrDefault(b) is { } m ? m.ToString("0.##", CultureInfo.InvariantCulture) + "%" : "—";
        return $"{history.Buckets[b]} at {Format.Time(e.At)}: shift {Format.Percent(shift)} ({Format.Percent(shift - e.CommonShift)} beyond common), " +
               $"band ± {Format.Percent(e.Band.ElementAtOrDefault(b))}, MAPE {ape}, drift {e.ConsecutiveDrift.ElementAtOrDefault(b)} of " +
               $"{history.ConsecutiveRequired}{(e.Stale.ElementAtOrDefault(b) ? ", STALE" : "")}";
    }
}
