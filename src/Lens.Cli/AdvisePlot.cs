using System.Globalization;
using Lens.Core;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace Lens.Cli;

/// <summary>
/// The advisor's Pareto picture: graphs compiled against predicted p90 E2E (served) and goodput, one point per scored deployment.
/// The p90 axis is logarithmic, so that an overloaded budget (its queue grows through the trace: p90s of minutes) does not flatten
/// the others; overloaded deployments are ringed in red and labelled. Graph counts are whole numbers, and so are the ticks.
/// </summary>
internal static class AdvisePlot
{
    private static readonly Color Overload = Colors.Red;

    public static void Write(string path, Advice advice)
    {
        var scored = advice.Scored.Append(advice.Recommended).ToArray();
        var multi = new Multiplot();
        multi.AddPlots(2);
        var latency = multi.GetPlot(0);
        var goodput = multi.GetPlot(1);
        var palette = new ScottPlot.Palettes.Category10();
        var index = 0;
        foreach (var s in scored)
        {
            var x = (double)s.BucketsCompiled;
            var service = advice.Slo is null ? s.Serving.RequestsPerSecond : s.Serving.GoodputPerSecond!.Value;
            var p90 = Math.Log10(Math.Max(s.Serving.E2e.P90, 1e-3));
            var recommended = s.Name == "recommended";

            // The recommendation is a ring around the point it was chosen from (same buckets), so both stay visible.
            var shape = recommended ? MarkerShape.OpenCircle : MarkerShape.FilledCircle;
            var color = palette.GetColor(index++);
            var a = latency.Add.Marker(x, p90, shape, recommended ? 18 : 9, color);
            var b = goodput.Add.Marker(x, service, shape, recommended ? 18 : 9, color);
            a.LineWidth = b.LineWidth = 2;
            a.LegendText = b.LegendText = s.Overloaded ? $"{s.Name} (overloaded)" : s.Name;
            if (s.Overloaded)
            {
                latency.Add.Marker(x, p90, MarkerShape.OpenCircle, 24, Overload).LineWidth = 2;
                goodput.Add.Marker(x, service, MarkerShape.OpenCircle, 24, Overload).LineWidth = 2;
                var label = latency.Add.Text(string.Create(CultureInfo.InvariantCulture, $"overloaded: p90 {s.Serving.E2e.P90:N0} ms"), x, p90);
                label.LabelFontColor = Overload;
                label.LabelFontSize = 12;
                label.OffsetX = 14;
                label.Alignment = Alignment.MiddleLeft;
            }
        }

        latency.Title("graphs compiled vs predicted p90 E2E (served; log scale; red rings: overloaded, queue grows through the trace)");
        latency.Axes.Left.Label.Text = "p90 E2E (ms, log)";
        latency.Axes.Left.TickGenerator = new NumericAutomatic
        {
            MinorTickGenerator = new LogMinorTickGenerator(),
            IntegerTicksOnly = true, // whole powers of ten
            LabelFormatter = y => Math.Pow(10, y).ToString("#,0.###", CultureInfo.InvariantCulture),
        };
        goodput.Title(advice.Slo is null ? "graphs compiled vs throughput" : "graphs compiled vs goodput under the SLO");
        goodput.Axes.Left.Label.Text = advice.Slo is null ? "requests/s" : "requests/s within the SLO";
        foreach (var plot in new[] { latency, goodput })
        {
            plot.Axes.Bottom.Label.Text = "graphs compiled (prefill + decode x batch)";
            plot.Axes.Bottom.TickGenerator = new NumericAutomatic { IntegerTicksOnly = true };
            plot.ShowLegend(Edge.Right); // beside the data, never over a point
        }

        latency.Axes.Margins(horizontal: 0.05, vertical: 0.15);
        goodput.Axes.Margins(horizontal: 0.05, vertical: 0.15);

        // Whole graph counts at the edges, with room on the right for an overloaded point's label.
        var graphs = scored.Select(s => s.BucketsCompiled).ToArray();
        var right = graphs.Max() + (scored.Any(s => s.Overloaded) ? Math.Max(2, (graphs.Max() - graphs.Min()) * 0.3) : 1);
        latency.Axes.SetLimitsX(Math.Max(0, graphs.Min() - 1), Math.Ceiling(right));
        goodput.Axes.SetLimitsX(Math.Max(0, graphs.Min() - 1), Math.Ceiling(right));
        CliFiles.ReplaceAtomically(path, ".png", temp => multi.SavePng(temp, 1400, 700));
    }
}
