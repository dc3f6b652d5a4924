using Lens.Core;
using ScottPlot;

namespace Lens.Cli;

/// <summary>The advisor's Pareto picture: graphs compiled against predicted p90 E2E (served) and goodput, one point per scored deployment.</summary>
internal static class AdvisePlot
{
    public static void Write(string path, Advice advice)
    {
        var scored = advice.Scored.Append(advice.Recommended);
        var multi = new Multiplot();
        multi.AddPlots(2);
        var latency = multi.GetPlot(0);
        var goodput = multi.GetPlot(1);
        foreach (var s in scored)
        {
            var x = (double)s.BucketsCompiled;
            var service = advice.Slo is null ? s.Serving.RequestsPerSecond : s.Serving.GoodputPerSecond!.Value;
            var a = latency.Add.Marker(x, s.Serving.E2e.P90);
            var b = goodput.Add.Marker(x, service);
            a.LegendText = b.LegendText = s.Name;
            a.Size = b.Size = s.Name == "recommended" ? 14 : 8;
        }

        latency.Title("graphs compiled vs predicted p90 E2E (served)");
        latency.Axes.Bottom.Label.Text = "buckets compiled (prefill + decode x batch)";
        latency.Axes.Left.Label.Text = "p90 E2E (ms)";
        goodput.Title(advice.Slo is null ? "graphs compiled vs throughput" : "graphs compiled vs goodput under the SLO");
        goodput.Axes.Bottom.Label.Text = "buckets compiled (prefill + decode x batch)";
        goodput.Axes.Left.Label.Text = advice.Slo is null ? "requests/s" : "requests/s within the SLO";
        latency.ShowLegend(Alignment.UpperRight);

        CliFiles.ReplaceAtomically(path, ".png", temp => multi.SavePng(temp, 1400, 600));
    }
}
