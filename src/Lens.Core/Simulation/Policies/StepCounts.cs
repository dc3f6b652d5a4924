using System.Collections.Immutable;

namespace Lens.Core;

/// <summary>Steps of one cost cell (<see cref="StepCells"/> index).</summary>
public readonly record struct CellCount(int Cell, long Steps);

/// <summary>
/// For one request of a measurement, the steps of each cost cell that run from the measurement's release up to and including the step
/// that emits its first token (<see cref="Ttft"/>) and the step that emits its last token (<see cref="E2e"/>); sparse, ascending by cell,
/// zero counts left out. Its TTFT and E2E are linear in the cell costs: <c>E2E = sum over cells of Steps * cost(cell)</c> (for a
/// prefill-first request, TTFT uses its own prefill's measured TTFT in place of that last prefill's full cost).
/// </summary>
public sealed record RequestStepCounts(ImmutableArray<CellCount> Ttft, ImmutableArray<CellCount> E2e);

/// <summary>
/// The policy-independent fit's design (method.md, "One fit for every policy"): runs a measurement, one request alone or a group
/// released together on an idle replica, through the policy's <see cref="PolicyScheduler"/> with symbolic (unit) costs, and counts the
/// steps of each cell before each request's first token and before its end.
/// </summary>
public static class StepCounts
{
    /// <summary>Counts for one measurement: <paramref name="group"/> released together at time 0 on an idle replica, admitted in the
    /// given order. One entry per request, in the group's order. <paramref name="maxNumSeqs"/>: as <see cref="PolicyScheduler.Run"/>.</summary>
    public static IReadOnlyList<RequestStepCounts> Of(PolicyScheduler scheduler, IReadOnlyList<RequestPair> group, int? maxNumSeqs = null)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(group);
        var sink = new Counter(scheduler.Cells.Count, group.Count);
        scheduler.Run([.. group.Select(r => new TraceRequest(0, r.InputLength, r.OutputLength))], StepCosts.Unit, sink, maxNumSeqs);
        return [.. sink.Ttft.Zip(sink.E2e, (t, e) => new RequestStepCounts(t, e))];
    }

    /// <summary>Counts for many measurements, each as <see cref="Of(PolicyScheduler, IReadOnlyList{RequestPair}, int?)"/>.</summary>
    public static IReadOnlyList<IReadOnlyList<RequestStepCounts>> OfEach(PolicyScheduler scheduler, IEnumerable<IReadOnlyList<RequestPair>> measurements,
        int? maxNumSeqs = null)
    {
        ArgumentNullException.ThrowIfNull(measurements);
        return [.. measurements.Select(m => Of(scheduler, m, maxNumSeqs))];
    }

    private sealed class Counter(int cells, int requests) : IStepSink
    {
        private readonly long[] _counts = new long[cells];
        private readonly SortedSet<int> _touched = [];

        public ImmutableArray<CellCount>[] Ttft { get; } = new ImmutableArray<CellCount>[requests];

        public ImmutableArray<CellCount>[] E2e { get; } = new ImmutableArray<CellCount>[requests];

        public void Step(ScheduledStep step)
        {
            _counts[step.Cell]++;
            _touched.Add(step.Cell);
            if (step.FirstToken.Count == 0 && step.Finished.Count == 0)
            {
                return;
            }

            var snapshot = _touched.Select(c => new CellCount(c, _counts[c])).ToImmutableArray();
            foreach (var id in step.FirstToken)
            {
                Ttft[id] = snapshot;
            }

            foreach (var id in step.Finished)
            {
                E2e[id] = snapshot;
            }
        }
    }
}
