using Lens.Core;
using ScottPlot;

namespace Lens.Cli;

using Measurement = Lens.Core.Measurement;

/// <summary>The demo's picture: measured and predicted E2E and TTFT across input length, with the prefill bucket edges marked.</summary>
internal static class DemoPlot
{
    public static void Write(string path, DeploymentModel model, IReadOnlyList<Measurement> sweep, RepeatStatistic statistic, int sweepOutput)
    {
        var plot = new Plot();
        var points = sweep.GroupBy(m => m.InputLength).OrderBy(g => g.Key).Select(g => (
            I: (double)g.Key,
            E2e: statistic.Reduce(g.Select(m => m.E2eMs).ToArray()),
            Ttft: g.Any(m => m.TtftMs is not null) ? statistic.Reduce(g.Where(m => m.TtftMs is not null).Select(m => m.TtftMs!.Value).ToArray()) : double.NaN))
            .ToArray();
        var maxInput = Math.Min(model.Buckets.MaxPrompt, model.Buckets.MaxSequence - sweepOutput);
        var xs = Enumerable.Range(1, maxInput).Select(i => (double)i).ToArray();
        var predicted = xs.Select(i => model.Predict((int)i, sweepOutput)).ToArray();

        var e2eLine = plot.Add.ScatterLine(xs, predicted.Select(p => p.E2eMs).ToArray());
        e2eLine.LegendText = $"predicted E2E (O = {sweepOutput})";
        e2eLine.LineWidth = 2;
        var e2eDots = plot.Add.ScatterPoints(points.Select(p => p.I).ToArray(), points.Select(p => p.E2e).ToArray());
        e2eDots.LegendText = "measured E2E";
        e2eDots.MarkerSize = 6;
        var ttftLine = plot.Add.ScatterLine(xs, predicted.Select(p => p.TtftMs).ToArray());
        ttftLine.LegendText = "predicted TTFT";
        ttftLine.LineWidth = 2;
        var withTtft = points.Where(p => !double.IsNaN(p.Ttft)).ToArray();
        if (withTtft.Length > 0)
        {
            var ttftDots = plot.Add.ScatterPoints(withTtft.Select(p => p.I).ToArray(), withTtft.Select(p => p.Ttft).ToArray());
            ttftDots.LegendText = "measured TTFT";
            ttftDots.MarkerSize = 6;
        }

        foreach (var edge in model.Buckets.Prefill)
        {
            var line = plot.Add.VerticalLine(edge);
            line.LinePattern = LinePattern.Dashed;
            line.Color = Colors.Gray.WithAlpha(0.6);
            line.LineWidth = 1;
        }

        plot.Title($"LENS on the reference engine: {model.Buckets}");
        plot.Axes.Bottom.Label.Text = "input length I (tokens); dashed: prefill bucket edges";
        plot.Axes.Left.Label.Text = "latency (ms)";
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, 1200, 700);
    }
}
