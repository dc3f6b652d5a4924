using Bunit;
using Lens.Abstractions;
using Lens.WebConsole.Components.Shared;

namespace Lens.WebConsole.Tests;

/// <summary>bUnit tests of the monitoring page's history: the chart over time and the empty state.</summary>
public sealed class HealthHistoryChartTests : BunitContext
{
    private static readonly DateTimeOffset Start = new(2026, 12, 3, 10, 0, 0, TimeSpan.Zero);

    /// <summary>Three analyses of prefill-32, decode-64, decode-128: decode-64 drifts, then is stale; decode-128 is never observed.</summary>
    private static DeploymentHealthHistory History() => new("d-1", 288, 3, ["prefill-32", "decode-64", "decode-128"],
    [
        new(Start, 0.01, 1, [30, 25, 0], [1.5, 12, null], [0.012, 0.2, null], [0.05, 0.05, 0.05], [0, 1, 0], [false, false, false]),
        new(Start.AddMinutes(5), 0.02, 1, [60, 50, 0], [1.2, 14, null], [0.02, 0.25, null], [0.05, 0.06, 0.05], [0, 2, 0], [false, false, false]),
        new(Start.AddMinutes(10), -0.01, 0, [90, 75, 0], [1.1, 3, null], [-0.01, 0.3, null], [0.05, 0.07, 0.05], [0, 0, 0], [false, true, false]),
    ]);

    [Fact]
    public void The_chart_draws_the_common_shift_apart_bucket_lines_with_stale_and_drifting_points_and_the_band()
    {
        var cut = Render<HealthHistoryChart>(p => p.Add(c => c.History, History()).Add(c => c.Device, "cpu-0").Add(c => c.Id, "d-1"));

        Assert.Equal("3", cut.Find("#health-history").GetAttribute("data-entries"));
        var common = cut.Find("#chart-history path.line-common");
        Assert.Equal("common shift", common.GetAttribute("data-series"));
        Assert.Equal("3", common.GetAttribute("data-points"));
        // Observed buckets only: decode-128 never was.
        Assert.Equal(["prefill-32", "decode-64"], cut.FindAll("#chart-history path.line-bucket").Select(e => e.GetAttribute("data-series")));
        var drifting = cut.FindAll("#chart-history circle.point-drifting");
        Assert.Equal([("decode-64", "0", "20"), ("decode-64", "1", "25")],
            drifting.Select(e => (e.GetAttribute("data-series"), e.GetAttribute("data-index"), e.GetAttribute("data-y"))));
        var stale = cut.Find("#chart-history circle.point-stale");
        Assert.Equal(("decode-64", "2", "30"), (stale.GetAttribute("data-series"), stale.GetAttribute("data-index"), stale.GetAttribute("data-y")));
        Assert.Contains("drift 0 of 3, STALE", stale.TextContent, StringComparison.Ordinal);
        Assert.Contains("band ± 7%", stale.TextContent, StringComparison.Ordinal);
        Assert.Single(cut.FindAll("#chart-history polygon.band"));
        Assert.Single(cut.FindAll("#chart-history line.zero")); // the common shift went negative
        Assert.Equal(2, cut.FindAll("#chart-history-error path.line-bucket").Count);
        Assert.Contains("10:10", cut.Find("#chart-history").TextContent, StringComparison.Ordinal);
        Assert.Empty(cut.FindAll("#no-history"));
    }

    [Fact]
    public void The_band_is_the_median_observed_bucket_s_around_the_common_shift()
    {
        var (low, high) = HealthHistoryView.Band(History());
        // Entry 2: bands 0.05 and 0.06 of the observed buckets (decode-128's is not counted): the upper median 0.06 around 0.02.
        Assert.Equal(-4, low[1], 9);
        Assert.Equal(8, high[1], 9);
        Assert.Equal(3, low.Length);
    }

    [Fact]
    public void The_traffic_heatmap_outlines_a_flagged_cell_and_says_where_its_re_profile_started()
    {
        var windows = History() with
        {
            Entries = [.. History().Entries.Select((e, i) => e with { Source = "traffic", Reprofiling = i == 2 ? "decode-64" : null })],
        };
        var (rows, columns, cells) = HealthHistoryView.TrafficHeatmap(windows)!.Value;

        Assert.Equal(["prefill-32", "decode-64"], rows);
        Assert.Equal(3, columns.Length);
        var flagged = cells[1][2];
        Assert.True(flagged.Marked);
        Assert.EndsWith("FLAGGED, re-profile started", flagged.Title, StringComparison.Ordinal);
        Assert.DoesNotContain("re-profile", cells[1][1].Title, StringComparison.Ordinal);
        Assert.DoesNotContain("re-profile", cells[0][2].Title, StringComparison.Ordinal);
    }

    [Fact]
    public void With_no_analysis_yet_the_page_says_how_to_report_telemetry()
    {
        var cut = Render<HealthHistoryChart>(p => p.Add(c => c.History, History() with { Entries = [] }).Add(c => c.Device, "cpu-0").Add(c => c.Id, "d-1"));

        var empty = cut.Find("#no-history");
        Assert.Contains("No telemetry analysed yet", empty.TextContent, StringComparison.Ordinal);
        Assert.Contains("POST /v1/devices/cpu-0/deployments/d-1/telemetry", empty.TextContent, StringComparison.Ordinal);
        Assert.Empty(cut.FindAll("svg"));
    }
}
