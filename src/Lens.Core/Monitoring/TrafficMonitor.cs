namespace Lens.Core;

/// <summary>A cell as a run of windows judged it: out of band in how many windows running, and flagged once that is enough.</summary>
public sealed record CellVerdict(CellHealth Health, int ConsecutiveOutOfBand, bool Flagged);

/// <summary>One window's verdicts.</summary>
public sealed record TrafficWindowVerdict(TrafficReport Report, IReadOnlyList<CellVerdict> Cells)
{
    public IEnumerable<CellVerdict> Flagged => Cells.Where(c => c.Flagged);
}

/// <summary>
/// Windows of live traffic in order (method.md, "Live traffic"): a cell is flagged when it is out of band in
/// <paramref name="consecutiveWindows"/> windows running, so one disturbed window flags nothing. A pure fold: the service keeps the
/// streaks with the deployment, the CLI over a file's windows.
/// </summary>
public sealed class TrafficMonitor(int consecutiveWindows = 2)
{
    private readonly Dictionary<BucketId, int> _streaks = [];

    public int ConsecutiveWindows { get; } = consecutiveWindows >= 1
        ? consecutiveWindows
        : throw new ArgumentOutOfRangeException(nameof(consecutiveWindows), consecutiveWindows, "at least 1 window");

    /// <summary>Streaks as they stand (cells out of band in the latest windows), to persist and restore.</summary>
    public IReadOnlyDictionary<BucketId, int> Streaks => _streaks;

    public void Restore(IEnumerable<KeyValuePair<BucketId, int>> streaks)
    {
        ArgumentNullException.ThrowIfNull(streaks);
        _streaks.Clear();
        foreach (var (cell, n) in streaks)
        {
            if (n > 0)
            {
                _streaks[cell] = n;
            }
        }
    }

    public TrafficWindowVerdict Next(TrafficReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var seen = new HashSet<BucketId>();
        var verdicts = new List<CellVerdict>(report.Cells.Count);
        foreach (var cell in report.Cells)
        {
            seen.Add(cell.Cell);
            var streak = cell.OutOfBand ? _streaks.GetValueOrDefault(cell.Cell) + 1 : 0;
            if (streak > 0)
            {
                _streaks[cell.Cell] = streak;
            }
            else
            {
                _streaks.Remove(cell.Cell);
            }

            verdicts.Add(new CellVerdict(cell, streak, streak >= ConsecutiveWindows));
        }

        foreach (var gone in _streaks.Keys.Where(c => !seen.Contains(c)).ToArray())
        {
            _streaks.Remove(gone); // a cell no request of this window reached is not judged out of band in it
        }

        return new TrafficWindowVerdict(report, verdicts);
    }
}
