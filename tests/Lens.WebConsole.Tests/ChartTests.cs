using Lens.WebConsole.Charts;

namespace Lens.WebConsole.Tests;

public sealed class ChartTests
{
    [Fact]
    public void Ttft_is_a_step_function_flat_inside_each_prefill_bucket()
    {
        var curve = LatencyCurves.Ttft(Models.Tiny());
        Assert.Equal(64, curve.Length); // I = 1..64
        Assert.All(curve.Where(p => p.X <= 16), p => Assert.Equal(10, p.Y));
        Assert.All(curve.Where(p => p.X is > 16 and <= 32), p => Assert.Equal(20, p.Y));
        Assert.All(curve.Where(p => p.X > 32), p => Assert.Equal(40, p.Y));
    }

    [Fact]
    public void E2e_composes_prefill_and_the_decode_steps_of_each_bucket()
    {
        var curve = LatencyCurves.E2e(Models.Tiny(), 8);
        Assert.Equal(64, curve.Length); // I + O <= 128 for every I <= 64
        // I = 1, O = 8: A[16] + 7 steps at lengths 2..8 in decode-16 = 10 + 7 * 1.
        Assert.Equal(17, curve[0].Y);
        // I = 10: steps at 11..17: 6 in decode-16, 1 in decode-32 -> 10 + 6 + 2.
        Assert.Equal(18, curve[9].Y);
        Assert.Empty(LatencyCurves.E2e(Models.Tiny(), 200));
    }

    [Fact]
    public void Edges_mark_prefill_edges_and_where_the_last_decode_step_crosses_a_decode_edge()
    {
        var edges = LatencyCurves.Edges(Models.Tiny().Buckets, 64, outputLength: 8);
        Assert.Equal([16, 32, 64], edges.Where(e => e.Kind == "prefill").Select(e => e.Edge));
        // The last of 7 steps runs at I + 7: beyond 16 from I = 10, beyond 32 from I = 26, beyond 64 from I = 58.
        Assert.Equal([10, 26, 58], edges.Where(e => e.Kind == "decode").Select(e => e.Edge));
        Assert.DoesNotContain(LatencyCurves.Edges(Models.Tiny().Buckets, 64, outputLength: 1), e => e.Kind == "decode");
    }

    [Fact]
    public void Long_ranges_are_sampled_with_both_sides_of_every_edge()
    {
        var buckets = new Lens.Core.BucketSet([1000, 5000, 9000], [10000]);
        var model = new Lens.Core.DeploymentModel(buckets,
            [new(1000, 1, 0, 1, 0, 0), new(5000, 2, 0, 2, 0, 0), new(9000, 3, 0, 3, 0, 0)], [new(10000, 1, 0)], Lens.Core.RepeatStatistic.Min, 0);
        var curve = LatencyCurves.Ttft(model);
        Assert.True(curve.Length <= LatencyCurves.MaxPoints + 1 + 2 * 3);
        Assert.Contains(curve, p => p.X == 5000 && p.Y == 2);
        Assert.Contains(curve, p => p.X == 5001 && p.Y == 3);
    }

    [Fact]
    public void Step_curve_svg_carries_edges_and_measured_points_as_data_attributes_and_escapes_text()
    {
        var svg = SvgChart.StepCurve("c1", "a <title> & more", "I", "ms", [new(1, 10), new(16, 10), new(17, 20)], [new(17, 21.5)],
            [new ChartEdge(16, "prefill")]);
        Assert.Contains("data-edge=\"16\" data-kind=\"prefill\"", svg, StringComparison.Ordinal);
        Assert.Contains("data-x=\"17\" data-y=\"21.5\"", svg, StringComparison.Ordinal);
        Assert.Contains("a &lt;title&gt; &amp; more", svg, StringComparison.Ordinal);
        Assert.Contains("<path class=\"curve\" d=\"M", svg, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", svg.Replace("http://www.w3.org/2000/svg", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public void Scatter_joins_one_kind_in_x_order_marks_the_rest_and_lists_only_drawn_kinds()
    {
        ChartPoint[] points = [new(9, 40, "k=2", "frontier"), new(5, 60, "k=1", "frontier"), new(7, 55, "cur <1>", "current"), new(3, double.NaN, "bad", "frontier")];
        var svg = SvgChart.Scatter("s1", "t", "x", "y", points, [("frontier", "frontier"), ("batch", "batch"), ("current", "current")], joined: "frontier");
        Assert.Equal(3, System.Text.RegularExpressions.Regex.Count(svg, "<circle ")); // the NaN point is left out
        Assert.Contains("data-name=\"cur &lt;1&gt;\" data-x=\"7\" data-y=\"55\"", svg, StringComparison.Ordinal);
        var line = System.Text.RegularExpressions.Regex.Match(svg, "<polyline class=\"join join-frontier\" points=\"([^\"]+)\"").Groups[1].Value;
        var xs = line.Split(' ').Select(p => double.Parse(p.Split(',')[0], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(2, xs.Length);
        Assert.True(xs[0] < xs[1]); // k=1 (5 graphs) before k=2 (9 graphs)
        Assert.Contains(">current</text>", svg, StringComparison.Ordinal);
        Assert.DoesNotContain(">batch</text>", svg, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.7, 1)]
    [InlineData(1.3, 2)]
    [InlineData(2.2, 2.5)]
    [InlineData(31, 50)]
    [InlineData(0, 1)]
    public void Axes_end_at_a_round_number(double max, double expected) => Assert.Equal(expected, SvgChart.NiceCeiling(max), 9);
}
