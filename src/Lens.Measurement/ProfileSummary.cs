using System.Globalization;
using System.Text;
using Lens.Core;

namespace Lens.Measurement;

/// <summary>A row (a request, or a group) that failed after its retries; the reason says how many attempts a transient fault took.</summary>
public sealed record ProfileFailure(PlanRow Row, string Reason, bool IsTransient, bool DuringWarmUp);

/// <summary>What a run did.</summary>
/// <param name="Total">Plan rows, times the repeat multiplier.</param>
/// <param name="Measured">Rows measured and appended by this run.</param>
/// <param name="Skipped">Rows already in the output file from an earlier run.</param>
/// <param name="Failures">Failed requests with their reasons (warm-ups included), in order.</param>
/// <param name="WarmUpRequests">Warm-up requests that succeeded.</param>
/// <param name="DeviceTime">Time spent waiting on the backend (warm-ups, retries and failures included).</param>
/// <param name="Elapsed">Wall time of the run.</param>
/// <param name="DroppedPartialLine">Whether the output file ended in a cut-off line (an earlier crash) that was removed.</param>
/// <param name="DroppedPartialGroupRows">Rows of groups the file held only in part (an interrupted group), removed and measured again.</param>
public sealed record ProfileSummary(
    int Total,
    int Measured,
    int Skipped,
    IReadOnlyList<ProfileFailure> Failures,
    int WarmUpRequests,
    TimeSpan DeviceTime,
    TimeSpan Elapsed,
    bool DroppedPartialLine,
    int DroppedPartialGroupRows = 0)
{
    /// <summary>Rows still to measure; a re-run measures exactly these.</summary>
    public int Remaining => Total - Measured - Skipped;

    public bool Complete => Remaining == 0;

    /// <summary>A few lines for people: counts, times, and each failure with its reason (at most <paramref name="maxFailures"/>).</summary>
    public string Describe(int maxFailures = 10)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"{Measured} measured, {Skipped} already in the file, {Failures.Count(f => !f.DuringWarmUp)} failed, {Remaining} of {Total} left; ");
        text.Append(CultureInfo.InvariantCulture,
            $"{WarmUpRequests} warm-up requests; device time {DeviceTime.TotalSeconds:0.###} s, elapsed {Elapsed.TotalSeconds:0.###} s");
        if (DroppedPartialLine)
        {
            text.Append("\nthe output file ended in a cut-off line (an earlier run was interrupted); it was removed and measured again");
        }

        if (DroppedPartialGroupRows > 0)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"\n{DroppedPartialGroupRows} rows of interrupted groups were removed from the output file; their groups were measured again whole");
        }

        foreach (var f in Failures.Take(maxFailures))
        {
            text.Append(CultureInfo.InvariantCulture,
                $"\n{(f.DuringWarmUp ? "warm-up " : "")}{f.Row.Bucket} I = {f.Row.InputLength}, O = {f.Row.OutputLength}, repeat {f.Row.Repeat}: " +
                $"{f.Reason}{(f.IsTransient ? " (transient)" : "")}");
        }

        if (Failures.Count > maxFailures)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n... and {Failures.Count - maxFailures} more failures");
        }

        return text.ToString();
    }
}

/// <summary>A run stopped by failures; <see cref="Summary"/> says what was done (all of it kept in the output file).</summary>
public sealed class ProfileRunException(string message, ProfileSummary summary, Exception? inner = null) : Exception(message, inner)
{
    public ProfileSummary Summary { get; } = summary;
}
