namespace Lens.Core;

/// <summary>What a cell was judged against in a window.</summary>
public enum CellReference
{
    /// <summary>Its profile (band from the profile's standard error), while the traffic baseline is being learned.</summary>
    Profile,

    /// <summary>The traffic's own baseline: the cell's shift in the first windows its profile was live.</summary>
    Traffic,
}

/// <summary>A cell as a run of windows judged it.</summary>
/// <param name="Health">The window's analysis of the cell.</param>
/// <param name="ConsecutiveOutOfBand">
/// Windows running that count against the cell: out of band against its profile while learning; leaning the same way beyond its
/// noise once judged against its baseline (their deviations are pooled).
/// </param>
/// <param name="Flagged">Out of band with at least <see cref="TrafficMonitor.ConsecutiveWindows"/> windows running.</param>
public sealed record CellVerdict(CellHealth Health, int ConsecutiveOutOfBand, bool Flagged)
{
    public CellReference Reference { get; init; }

    /// <summary>Whether the cell is out of band in this window (against <see cref="Reference"/>).</summary>
    public bool OutOfBand { get; init; }

    /// <summary>The band that judged it: the profile's, or <c>max(MinRelativeShift, Z * se(deviation))</c> against the baseline.</summary>
    public double Band { get; init; }

    /// <summary>Windows of the baseline learned so far (at most <see cref="TrafficMonitor.BaselineWindows"/>).</summary>
    public int BaselineWindows { get; init; }

    /// <summary>The cell's own shift (beyond the common shift) in its baseline windows (median); null while learning.</summary>
    public double? Baseline { get; init; }

    /// <summary>Own shift less the baseline, pooled over the windows running (inverse-variance mean); null when none counts.</summary>
    public double? Deviation { get; init; }

    /// <summary>Standard error of <see cref="Deviation"/>, the baseline's own uncertainty included.</summary>
    public double? DeviationStandardError { get; init; }
}

/// <summary>One window's verdicts.</summary>
public sealed record TrafficWindowVerdict(TrafficReport Report, IReadOnlyList<CellVerdict> Cells)
{
    public IEnumerable<CellVerdict> Flagged => Cells.Where(c => c.Flagged);

    /// <summary>
    /// Whether the window's common shift left the recent windows' (their median, beyond <c>max(MinRelativeShift, Z * their
    /// scatter)</c>): the machine itself was disturbed, and no cell is judged in it.
    /// </summary>
    public bool Disturbed { get; init; }

    /// <summary>The recent windows' median common shift the window was compared with (null before there were enough).</summary>
    public double? RecentCommonShift { get; init; }
}

/// <summary>A value with its standard deviation: a window's own shift, or its deviation from the baseline.</summary>
public readonly record struct TrackPoint(double Value, double Sigma);

/// <summary>
/// What the monitor holds of one cell between windows, to persist and restore: the cost the cell had when its track began (a new
/// cost starts the track again), the windows out of band against its profile running, the own shifts of its baseline windows, and
/// the deviations of the windows running that lean the same way.
/// </summary>
public sealed record CellTrack(double ProfiledMs, int Streak, TrackPoint[] Learned, TrackPoint[] Run);

/// <summary>
/// Windows of live traffic in order (method.md, "Live traffic"): a cell whose shift leaves its noise band in consecutive windows is
/// flagged. A pure fold: the service keeps the tracks with the deployment, the CLI over a file's windows.
/// <para>
/// The band comes from two places. A profile knows its own precision only roughly (a few rounds on a noisy device; none at all from
/// one round), and on live traffic a cell's shift also moves with the machine from window to window, beyond what one window's
/// regression says. So each cell's first <see cref="BaselineWindows"/> judged windows after its cost was set are its baseline: the
/// median of its own shift (beyond the common shift) and their scatter (the mean absolute deviation from it, no less than the
/// windows' own standard errors). Meanwhile the cell is judged against its profile (<see cref="TrafficAnalysis"/>'s band: at least
/// <c>MinRelativeShift</c>, wider where the profile knows it is imprecise); a window out of band there does not enter the baseline.
/// From then on each window's deviation from the
/// baseline has a standard deviation of the machine's part of the scatter and the window's own error; windows that lean the same
/// way by more than one standard deviation form a run (at most <see cref="MaxRunWindows"/>), whose deviations are pooled by
/// inverse variance. The cell is out of band when the pooled deviation clears <c>max(MinRelativeShift, Z * its standard error)</c>
/// (the baseline's own error included), and flagged when that holds over at least <see cref="ConsecutiveWindows"/> windows. A small
/// persistent shift thus builds up evidence over windows, where a rule asking each window to clear the band alone would wait for
/// ever; a window that does not lean breaks the run, and one disturbed window is not a run.
/// </para>
/// A window whose common shift leaves the recent windows' (their median, beyond <c>max(MinRelativeShift, Z * their scatter)</c>,
/// once there are three) judges no cell: when the machine itself is disturbed (another tenant's load), cells slow unevenly and no
/// single cell is to blame; it ends the cells' runs and does not enter a baseline. A lasting change of the machine becomes the
/// recent normal within a few windows.
/// <para>
/// The baseline assumes the device was as profiled while it was learned; a cell already off by more than its profile's band then is
/// flagged against the profile and not learned, and a cell whose cost is re-estimated or re-profiled starts learning again.
/// </para>
/// </summary>
public sealed class TrafficMonitor
{
    /// <summary>Median absolute deviation to standard deviation, for a normal distribution.</summary>
    private const double MadToSigma = 1.4826;

    /// <summary>Mean absolute deviation to standard deviation, for a normal distribution (sqrt(pi / 2)).</summary>
    private const double MeanAbsoluteToSigma = 1.2533;

    /// <summary>Standard error of a median relative to a mean's, for a normal distribution (sqrt(pi / 2)).</summary>
    private const double MedianEfficiency = 1.2533;

    /// <summary>No standard deviation is taken below this (a window that reproduced its prediction exactly).</summary>
    private const double MinSigma = 1e-9;

    /// <summary>Earlier windows a common shift is compared with before the machine can be called disturbed.</summary>
    private const int MinRecentWindows = 3;

    private readonly Dictionary<BucketId, CellTrack> _tracks = [];
    private readonly Queue<double> _commons = new();

    /// <param name="consecutiveWindows">Windows running a cell must be out of band in to be flagged (1..100).</param>
    /// <param name="baselineWindows">Judged windows that form a cell's traffic baseline (2..1000).</param>
    /// <param name="z">Standard errors the deviation must clear.</param>
    /// <param name="minRelativeShift">Smallest deviation that counts.</param>
    /// <param name="maxRunWindows">Most windows whose deviations are pooled (the latest; default the larger of 8 and the consecutive windows).</param>
    public TrafficMonitor(int consecutiveWindows = 2, int baselineWindows = 10, double z = 4, double minRelativeShift = 0.10, int? maxRunWindows = null)
    {
        ConsecutiveWindows = consecutiveWindows is >= 1 and <= 100
            ? consecutiveWindows
            : throw new ArgumentOutOfRangeException(nameof(consecutiveWindows), consecutiveWindows, "1..100 windows");
        BaselineWindows = baselineWindows is >= 2 and <= 1000
            ? baselineWindows
            : throw new ArgumentOutOfRangeException(nameof(baselineWindows), baselineWindows, "2..1000 windows");
        Z = z > 0 ? z : throw new ArgumentOutOfRangeException(nameof(z), z, "above 0");
        MinRelativeShift = minRelativeShift >= 0 ? minRelativeShift : throw new ArgumentOutOfRangeException(nameof(minRelativeShift), minRelativeShift, "0 or more");
        MaxRunWindows = (maxRunWindows ?? Math.Max(8, ConsecutiveWindows)) is var most && most >= ConsecutiveWindows
            ? most
            : throw new ArgumentOutOfRangeException(nameof(maxRunWindows), maxRunWindows, "at least the consecutive windows");
    }

    public int ConsecutiveWindows { get; }

    public int BaselineWindows { get; }

    public double Z { get; }

    public double MinRelativeShift { get; }

    public int MaxRunWindows { get; }

    /// <summary>The tracks as they stand, to persist and restore.</summary>
    public IReadOnlyDictionary<BucketId, CellTrack> Tracks => _tracks;

    /// <summary>The latest windows' common shifts (at most <see cref="BaselineWindows"/>), oldest first, to persist and restore.</summary>
    public IReadOnlyCollection<double> RecentCommonShifts => _commons;

    public void Restore(IEnumerable<KeyValuePair<BucketId, CellTrack>> tracks, IEnumerable<double>? recentCommonShifts = null)
    {
        ArgumentNullException.ThrowIfNull(tracks);
        _commons.Clear();
        foreach (var c in (recentCommonShifts ?? []).Where(double.IsFinite).TakeLast(BaselineWindows))
        {
            _commons.Enqueue(c);
        }

        _tracks.Clear();
        foreach (var (cell, track) in tracks)
        {
            _tracks[cell] = track with
            {
                Learned = [.. track.Learned.Take(BaselineWindows)],
                Run = [.. track.Run.TakeLast(MaxRunWindows)],
            };
        }
    }

    public TrafficWindowVerdict Next(TrafficReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var (disturbed, recent) = Disturbance(report.CommonShift);
        if (double.IsFinite(report.CommonShift))
        {
            _commons.Enqueue(report.CommonShift);
            while (_commons.Count > BaselineWindows)
            {
                _commons.Dequeue();
            }
        }

        var verdicts = new List<CellVerdict>(report.Cells.Count);
        var seen = new HashSet<BucketId>();
        foreach (var cell in report.Cells)
        {
            seen.Add(cell.Cell);
            var track = _tracks.GetValueOrDefault(cell.Cell);
            if (track is null || !SameCost(track.ProfiledMs, cell.ProfiledMs))
            {
                track = new CellTrack(cell.ProfiledMs, 0, [], []);
            }

            var (next, verdict) = Judge(track, disturbed ? cell with { Judged = false } : cell, report.CommonShift);
            _tracks[cell.Cell] = next;
            verdicts.Add(verdict);
        }

        // A cell no request of this window reached is not judged in it: its runs end, its baseline stays.
        foreach (var (cell, track) in _tracks.ToArray())
        {
            if (!seen.Contains(cell) && (track.Streak > 0 || track.Run.Length > 0))
            {
                _tracks[cell] = track with { Streak = 0, Run = [] };
            }
        }

        return new TrafficWindowVerdict(report, verdicts) { Disturbed = disturbed, RecentCommonShift = recent };
    }

    /// <summary>Whether <paramref name="common"/> leaves the recent windows' common shifts, and their median.</summary>
    private (bool Disturbed, double? Recent) Disturbance(double common)
    {
        if (_commons.Count < MinRecentWindows)
        {
            return (false, null);
        }

        var sorted = _commons.Order().ToArray();
        var median = RepeatStatistic.QuantileOfSorted(sorted, 0.5);
        var scatter = MadToSigma * RepeatStatistic.QuantileOfSorted([.. sorted.Select(c => Math.Abs(c - median)).Order()], 0.5);
        return (!double.IsFinite(common) || Math.Abs(common - median) > Math.Max(MinRelativeShift, Z * scatter), median);
    }

    private (CellTrack Track, CellVerdict Verdict) Judge(CellTrack track, CellHealth cell, double common)
    {
        var own = cell.Shift - common;
        var sigma = Math.Max(MinSigma, cell.ShiftStandardError);
        if (!cell.Judged || !double.IsFinite(own))
        {
            var reference = track.Learned.Length >= BaselineWindows ? CellReference.Traffic : CellReference.Profile;
            return (track with { Streak = 0, Run = [] }, new CellVerdict(cell, 0, false)
            {
                Reference = reference, Band = cell.Band, BaselineWindows = track.Learned.Length,
                Baseline = reference == CellReference.Traffic ? Baseline(track.Learned).Offset : null,
            });
        }

        if (track.Learned.Length < BaselineWindows)
        {
            // Learning: judged against the profile; windows in its band are the baseline.
            const CellReference reference = CellReference.Profile;
            var outOfBand = cell.OutOfBand;
            var streak = outOfBand ? track.Streak + 1 : 0;
            var learned = outOfBand ? track.Learned : [.. track.Learned, new TrackPoint(own, sigma)];
            return (track with { Streak = streak, Learned = learned, Run = [] }, new CellVerdict(cell, streak, outOfBand && streak >= ConsecutiveWindows)
            {
                Reference = reference, OutOfBand = outOfBand, Band = cell.Band, BaselineWindows = learned.Length,
            });
        }

        var baseline = Baseline(track.Learned);
        var deviation = own - baseline.Offset;
        var windowSigma = Math.Max(MinSigma, Math.Sqrt(baseline.MachineVariance + (sigma * sigma)));
        TrackPoint[] run = Math.Abs(deviation) < windowSigma ? []
            : track.Run.Length > 0 && track.Run[^1].Value > 0 != deviation > 0 ? [new TrackPoint(deviation, windowSigma)]
            : [.. track.Run.TakeLast(MaxRunWindows - 1), new TrackPoint(deviation, windowSigma)];
        var verdict = new CellVerdict(cell, run.Length, false)
        {
            Reference = CellReference.Traffic, Band = Math.Max(MinRelativeShift, Z * baseline.OffsetError), BaselineWindows = track.Learned.Length,
            Baseline = baseline.Offset,
        };
        if (run.Length > 0)
        {
            double weights = 0, sum = 0;
            foreach (var p in run)
            {
                weights += 1 / (p.Sigma * p.Sigma);
                sum += p.Value / (p.Sigma * p.Sigma);
            }

            var pooled = sum / weights;
            var se = Math.Sqrt((1 / weights) + (baseline.OffsetError * baseline.OffsetError));
            var band = Math.Max(MinRelativeShift, Z * se);
            var outOfBand = Math.Abs(pooled) > band;
            verdict = verdict with
            {
                OutOfBand = outOfBand, Flagged = outOfBand && run.Length >= ConsecutiveWindows, Band = band, Deviation = pooled,
                DeviationStandardError = se,
            };
        }

        return (track with { Streak = 0, Run = run }, verdict);
    }

    /// <summary>
    /// The baseline of a cell's learned windows: the median own shift, the machine's share of their scatter (the median absolute
    /// deviation as a variance, less the windows' own mean variance, never below 0), and the offset's standard error.
    /// </summary>
    private static (double Offset, double MachineVariance, double OffsetError) Baseline(TrackPoint[] learned)
    {
        var values = learned.Select(p => p.Value).Order().ToArray();
        var offset = RepeatStatistic.QuantileOfSorted(values, 0.5);
        // The mean absolute deviation, not the median one: a baseline is ten windows or so, where the median absolute deviation
        // (37% efficient) often lands on a few windows that happened to agree and takes the cell for far steadier than it is.
        var scatter = MeanAbsoluteToSigma * values.Average(v => Math.Abs(v - offset));
        var own = learned.Average(p => p.Sigma * p.Sigma);
        var total = Math.Max(scatter * scatter, own);
        return (offset, total - own, MedianEfficiency * Math.Sqrt(total / learned.Length));
    }

    private static bool SameCost(double a, double b) => Math.Abs(a - b) <= 1e-9 * Math.Max(Math.Abs(a), Math.Abs(b));
}
