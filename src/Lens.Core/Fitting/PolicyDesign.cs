using System.Collections.Immutable;

namespace Lens.Core;

/// <summary>
/// One distinct measurement of a policy fit: the requests released together (in release order; one request alone is a group of one),
/// its repeats reduced by the profile's statistic, and the step counts of each cost cell before its end and before its first token
/// (<see cref="StepCounts"/>), so that <c>E2E = sum Steps * cost</c> (method.md, "One fit for every policy").
/// </summary>
/// <param name="Requests">The group's requests in release order.</param>
/// <param name="E2eMs">The group's end (its last request's E2E from the release), reduced over <see cref="Repeats"/>.</param>
/// <param name="E2e">Steps of each cell from the release to the group's last step.</param>
/// <param name="TtftMs">The group's first token (its earliest TTFT), reduced over the repeats that streamed; null when none did.</param>
/// <param name="Ttft">Steps of each cell up to and including the step that emits the group's first token.</param>
/// <param name="Repeats">Repeats of the E2E.</param>
/// <param name="TtftRepeats">Repeats of the TTFT.</param>
/// <param name="E2eValues">The repeats' E2E (for noise and interval calibration).</param>
/// <param name="TtftValues">The repeats' TTFT.</param>
public sealed record PolicyPoint(ImmutableArray<RequestPair> Requests, double E2eMs, ImmutableArray<CellCount> E2e, double? TtftMs,
    ImmutableArray<CellCount> Ttft, int Repeats, int TtftRepeats, ImmutableArray<double> E2eValues, ImmutableArray<double> TtftValues)
{
    /// <summary>Steps the device runs for this measurement once.</summary>
    public long Steps => E2e.Sum(c => c.Steps);

    /// <summary>Readable form: <c>I=129 O=127</c>, or <c>4 x (I=129 O=127)</c> for a group of identical requests.</summary>
    public string Describe() =>
        Requests.All(r => r == Requests[0])
            ? Requests.Length == 1 ? $"I={Requests[0].InputLength} O={Requests[0].OutputLength}"
            : $"{Requests.Length} x (I={Requests[0].InputLength} O={Requests[0].OutputLength})"
            : string.Join(" + ", Requests.Select(r => $"(I={r.InputLength} O={r.OutputLength})"));
}

/// <summary>
/// The times of one release run by a <see cref="PolicyScheduler"/> with real costs: each request's first token and end, from the
/// release (what a profile runner measures of a group; a simulated device's answer).
/// </summary>
public sealed class ReleaseTimes(int requests) : IStepSink
{
    /// <summary>Each request's time to first token (ms).</summary>
    public double[] Ttft { get; } = new double[requests];

    /// <summary>Each request's end (ms).</summary>
    public double[] E2e { get; } = new double[requests];

    public void Step(ScheduledStep step)
    {
        ArgumentNullException.ThrowIfNull(step);
        foreach (var id in step.FirstToken)
        {
            Ttft[id] = step.FirstTokenAtMs;
        }

        foreach (var id in step.Finished)
        {
            E2e[id] = step.EndMs;
        }
    }
}

/// <summary>Builds <see cref="PolicyPoint"/>s: measurements grouped into releases, repeats reduced, counts from the policy's scheduler.</summary>
public static class PolicyDesign
{
    /// <summary>
    /// Groups <paramref name="measurements"/> into releases (rows sharing <see cref="MeasuredRequest.Group"/>, in row order; a row
    /// without a group stands alone), merges repeats of the same release (same requests in the same order) and counts each release's
    /// steps under <paramref name="scheduler"/>. Throws <see cref="RequestOutOfRangeException"/> naming a release the policy cannot run.
    /// </summary>
    public static IReadOnlyList<PolicyPoint> Points(PolicyScheduler scheduler, IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(measurements);
        var releases = new List<List<MeasuredRequest>>();
        var byGroup = new Dictionary<long, int>();
        foreach (var m in measurements)
        {
            if (m.Group is not { } g)
            {
                releases.Add([m]);
            }
            else if (byGroup.TryGetValue(g, out var at))
            {
                releases[at].Add(m);
            }
            else
            {
                byGroup[g] = releases.Count;
                releases.Add([m]);
            }
        }

        var points = new List<PolicyPoint>();
        foreach (var same in releases.GroupBy(r => Key(r)).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var requests = same.First().Select(m => new RequestPair(m.InputLength, m.OutputLength)).ToImmutableArray();
            var counts = CountsOf(scheduler, requests);
            double[] e2e = [.. same.Select(r => r.Max(m => m.E2eMs))];
            double[] ttft = [.. same.Where(r => r.Any(m => m.TtftMs is not null)).Select(r => r.Where(m => m.TtftMs is not null).Min(m => m.TtftMs!.Value))];
            var e2eValue = statistic.Reduce([.. e2e]);
            double? ttftValue = ttft.Length > 0 ? statistic.Reduce([.. ttft]) : null;
            points.Add(new PolicyPoint(requests, e2eValue, counts.E2e, ttftValue, counts.Ttft, e2e.Length, ttft.Length, [.. e2e], [.. ttft]));
        }

        return points;
    }

    /// <summary>The counts of a release: to its last step (the group's end) and to the step of its earliest first token.</summary>
    public static (ImmutableArray<CellCount> E2e, ImmutableArray<CellCount> Ttft) CountsOf(PolicyScheduler scheduler, IReadOnlyList<RequestPair> requests)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        var each = StepCounts.Of(scheduler, requests);

        // All costs are positive, so the request with the most steps before its end ends last, and the one with the fewest steps
        // before its first token emits first, whatever the costs.
        var last = each.MaxBy(c => c.E2e.Sum(x => x.Steps))!;
        var first = each.MinBy(c => c.Ttft.Sum(x => x.Steps))!;
        return (last.E2e, first.Ttft);
    }

    private static string Key(List<MeasuredRequest> release) =>
        string.Join(';', release.Select(m => $"{m.InputLength:D9},{m.OutputLength:D9}"));
}
