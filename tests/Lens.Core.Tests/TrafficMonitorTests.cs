namespace Lens.Core.Tests;

/// <summary>
/// The fold over windows of live traffic (<see cref="TrafficMonitor"/>) on windows whose per-cell analyses are given: how a cell's
/// traffic baseline is learned, how windows that lean the same way pool their evidence, and when the machine, not a cell, moved.
/// </summary>
public sealed class TrafficMonitorTests
{
    private static readonly BucketId Slowed = new(BucketKind.Decode, 256, 2);
    private static readonly BucketId Steady = new(BucketKind.Decode, 512, 4);
    private static readonly BucketId Prefill = new(BucketKind.Prefill, 128);

    /// <summary>
    /// One window: each cell's own shift (beyond a common shift of <paramref name="common"/>) with standard error 0.1, out of band
    /// against the profile (band 0.1, as a one-round profile gives) when it clears both. The steady cells alternate +-0.05 with the
    /// window's parity so their baseline has a scatter.
    /// </summary>
    private static TrafficReport Window(int index, double slowedOwn, double common = 0.05, double se = 0.1, double profiledMs = 1.0)
    {
        var alternate = index % 2 == 0 ? 0.05 : -0.05;
        return new TrafficReport(1000, 0, 20, 25, common,
        [
            Cell(Slowed, slowedOwn + alternate, se, profiledMs),
            Cell(Steady, alternate, se, 2.0),
            Cell(Prefill, -alternate, se / 4, 10.0),
        ], 0, 100_000);

        CellHealth Cell(BucketId id, double own, double error, double cost) =>
            new(id, 500, 1000, common + own, error, 0.1, Math.Abs(own) > 0.1 && Math.Abs(own) > 4 * error, cost, null) { Judged = true };
    }

    private static TrafficMonitor Learned(int baselineWindows = 10)
    {
        var monitor = new TrafficMonitor(consecutiveWindows: 2, baselineWindows: baselineWindows);
        for (var w = 0; w < baselineWindows; w++)
        {
            var verdict = monitor.Next(Window(w, 0));
            Assert.Empty(verdict.Flagged);
            Assert.All(verdict.Cells, c => Assert.Equal(CellReference.Profile, c.Reference));
        }

        return monitor;
    }

    [Fact]
    public void A_shift_no_single_window_can_call_is_flagged_once_the_windows_leaning_the_same_way_clear_the_band_together()
    {
        var monitor = Learned();
        var verdicts = Enumerable.Range(10, 3).Select(w => monitor.Next(Window(w, 0.3))).ToArray();

        // Each window alone: 0.3 is three of its standard errors (0.1), short of Z = 4; the profile's rule never flags it.
        Assert.All(verdicts, v => Assert.False(v.Report.Cells.Single(c => c.Cell == Slowed).OutOfBand));
        var slowed = verdicts.Select(v => v.Cells.Single(c => c.Health.Cell == Slowed)).ToArray();
        Assert.All(slowed, c => Assert.Equal(CellReference.Traffic, c.Reference));
        Assert.Equal([1, 2, 3], slowed.Select(c => c.ConsecutiveOutOfBand));
        Assert.Equal([false, false, true], slowed.Select(c => c.Flagged));
        Assert.All(slowed, c => Assert.InRange(c.Deviation!.Value, 0.25, 0.35));
        Assert.True(slowed[2].DeviationStandardError < slowed[0].DeviationStandardError / 1.4, "three windows pooled are tighter than one");
        Assert.Empty(verdicts[0].Flagged);
        Assert.Empty(verdicts[1].Flagged);
        Assert.Equal([Slowed], verdicts[2].Flagged.Select(c => c.Health.Cell));
        Assert.All(verdicts.SelectMany(v => v.Cells).Where(c => c.Health.Cell != Slowed), c => Assert.False(c.OutOfBand));
    }

    [Fact]
    public void A_window_that_does_not_lean_ends_the_run_so_scattered_windows_never_add_up()
    {
        var monitor = Learned();
        Assert.Equal(1, monitor.Next(Window(10, 0.3)).Cells.Single(c => c.Health.Cell == Slowed).ConsecutiveOutOfBand);
        Assert.Equal(2, monitor.Next(Window(11, 0.3)).Cells.Single(c => c.Health.Cell == Slowed).ConsecutiveOutOfBand);
        var quiet = monitor.Next(Window(12, 0.02)).Cells.Single(c => c.Health.Cell == Slowed);
        Assert.Equal(0, quiet.ConsecutiveOutOfBand);
        Assert.Null(quiet.Deviation);
        var again = monitor.Next(Window(13, 0.3)).Cells.Single(c => c.Health.Cell == Slowed);
        Assert.Equal(1, again.ConsecutiveOutOfBand);
        Assert.False(again.Flagged);

        // Windows that lean one way then the other do not pool.
        var down = monitor.Next(Window(14, -0.3)).Cells.Single(c => c.Health.Cell == Slowed);
        Assert.Equal(1, down.ConsecutiveOutOfBand);
        Assert.True(down.Deviation < 0);
    }

    [Fact]
    public void After_the_baseline_a_cell_is_judged_against_its_own_traffic_not_its_profile()
    {
        // The profile misjudges the cell by a constant 30% (a noisy one-round profile): it is out of band against the profile in
        // every window, so it is flagged while learning and never learned...
        var strict = new TrafficMonitor(baselineWindows: 4);
        var flags = Enumerable.Range(0, 6).Select(w => strict.Next(Window(w, 0.6, se: 0.05))).Select(v => v.Flagged.Any(c => c.Health.Cell == Slowed));
        Assert.Equal([false, true, true, true, true, true], flags);
        Assert.Empty(strict.Tracks[Slowed].Learned);

        // ...while an offset inside the profile's band is learned, and the same offset later is no deviation.
        var monitor = new TrafficMonitor(baselineWindows: 4);
        for (var w = 0; w < 8; w++)
        {
            var cell = monitor.Next(Window(w, 0.08)).Cells.Single(c => c.Health.Cell == Slowed);
            Assert.False(cell.OutOfBand);
            Assert.Equal(w < 4 ? CellReference.Profile : CellReference.Traffic, cell.Reference);
            Assert.Equal(Math.Min(w + 1, 4), cell.BaselineWindows);
            if (w >= 4)
            {
                Assert.InRange(cell.Baseline!.Value, 0.07, 0.09);
            }
        }
    }

    [Fact]
    public void A_window_whose_common_shift_leaves_the_recent_ones_judges_no_cell()
    {
        var monitor = Learned();
        var verdict = monitor.Next(Window(10, 1.0, common: 0.6));
        Assert.True(verdict.Disturbed);
        Assert.InRange(verdict.RecentCommonShift!.Value, 0.049, 0.051);
        Assert.All(verdict.Cells, c => Assert.False(c.OutOfBand));
        Assert.Empty(verdict.Flagged);

        // The next window, the machine back to normal, judges again; a lasting change of the machine becomes the recent normal.
        Assert.False(monitor.Next(Window(11, 0, common: 0.06)).Disturbed);
        var shifted = Enumerable.Range(12, 8).Select(w => monitor.Next(Window(w, 0, common: 0.3)).Disturbed).ToArray();
        Assert.True(shifted[0]);
        Assert.False(shifted[^1]);
    }

    [Fact]
    public void A_cell_whose_cost_changed_learns_again_and_a_restored_monitor_judges_as_the_original()
    {
        var monitor = Learned(4);
        var reestimated = monitor.Next(Window(4, 0, profiledMs: 1.3)).Cells.Single(c => c.Health.Cell == Slowed);
        Assert.Equal(CellReference.Profile, reestimated.Reference);
        Assert.Equal(1, reestimated.BaselineWindows);

        var original = Learned(4);
        original.Next(Window(4, 0.3));
        var restored = new TrafficMonitor(baselineWindows: 4);
        restored.Restore(original.Tracks, original.RecentCommonShifts);
        for (var w = 5; w < 8; w++)
        {
            var a = original.Next(Window(w, 0.3));
            var b = restored.Next(Window(w, 0.3));
            Assert.Equal(a.Cells.Select(c => (c.OutOfBand, c.Flagged, c.ConsecutiveOutOfBand, c.Deviation)),
                b.Cells.Select(c => (c.OutOfBand, c.Flagged, c.ConsecutiveOutOfBand, c.Deviation)));
        }
    }

    [Fact]
    public void Settings_out_of_range_are_refused_with_their_range()
    {
        Assert.Contains("1..100", Assert.Throws<ArgumentOutOfRangeException>(() => new TrafficMonitor(0)).Message, StringComparison.Ordinal);
        Assert.Contains("2..1000", Assert.Throws<ArgumentOutOfRangeException>(() => new TrafficMonitor(2, 1)).Message, StringComparison.Ordinal);
        Assert.Equal(100, new TrafficMonitor(100).MaxRunWindows);
    }
}
