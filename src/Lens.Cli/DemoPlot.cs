using Lens.Core;
using ScottPlot;

namespace Lens.Cli;


/// <summary>The demo's picture: measured and predicted E2E and TTFT across input length, with the prefill and decode bucket edges marked.</summary>
internal static class DemoPlot
{
    public static void Write(string path, DeploymentModel model, IReadOnlyList<MeasuredRequest> sweep, RepeatStatistic statistic, int sweepOutput)
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

        // Prefill edges sit at I = p. A decode edge d is where the request's last step, of length I + O - 1 (after-append), crosses
        // it: at a fixed O, that is I = d - (O - 1) on this axis. Edges the sweep never reaches are left out.
        MarkEdges(plot, model.Buckets.Prefill.Select(p => (double)p), maxInput, LinePattern.Dashed, Colors.Gray.WithAlpha(0.7),
            "prefill bucket edges (I = p)");
        var lastStep = model.Buckets.StepLength(0, sweepOutput - 1);
        MarkEdges(plot, model.Buckets.Decode.Select(d => (double)(d - lastStep)), maxInput, LinePattern.Dotted, Colors.DarkOrange.WithAlpha(0.8),
            $"decode bucket edges (last step I + {lastStep} = d)");

        plot.Title($"LENS on the reference engine: {model.Buckets}");
        plot.Axes.Bottom.Label.Text = "input length I (tokens)";
        plot.Axes.Left.Label.Text = "latency (ms)";
        plot.Axes.AutoScale();
        plot.Axes.SetLimitsX(0, maxInput * 1.02); // input lengths start at 1: no negative margin
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, 1200, 700);
    }

    /// <summary>Vertical lines at <paramref name="xs"/> within (0, <paramref name="maxX"/>], one legend entry for all of them.</summary>
    private static void MarkEdges(Plot plot, IEnumerable<double> xs, double maxX, LinePattern pattern, Color color, string legend)
    {
        var first = true;
        foreach (var x in xs.Where(x => x > 0 && x <= maxX))
        {
            var line = plot.Add.VerticalLine(x);
            line.LinePattern = pattern;
            line.Color = color;
            line.LineWidth = 1.5f;
            if (first)
            {
                line.LegendText = legend;
                first = false;
            }
        }
    }
}
