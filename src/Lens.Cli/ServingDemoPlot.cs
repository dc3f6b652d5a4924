using Lens.Core;
using ScottPlot;

namespace Lens.Cli;

/// <summary>
/// The serving demo's picture: p50 and p90 of E2E and TTFT against the request rate, predicted by the serving simulation as lines
/// (the mix's long trace, time-scaled to each rate) and measured at each replayed load as points (filled: first replay; open: twin).
/// </summary>
internal static class ServingDemoPlot
{
    private const int Rates = 24;

    public static void Write(string path, DeploymentModel model, IReadOnlyList<TraceRequest> mix, double capacity,
        IReadOnlyList<(double Rate, ServingFigures Measured, ServingFigures Twin)> loads)
    {
        var plot = new Plot();
        var top = Math.Max(0.95, loads.Max(l => l.Rate) / capacity * 1.05);
        var rates = Enumerable.Range(1, Rates).Select(k => capacity * top * k / Rates).ToArray();

        // The mix's arrivals were drawn at 1 request/s: at rate r they are the same draws, scaled by 1/r.
        var predicted = rates.Select(r => ServingFigures.Of(ServingSimulation.Simulate(model,
            [.. mix.Select(q => q with { ArrivalMs = q.ArrivalMs / r })]))).ToArray();
        var series = new (string Name, Func<ServingFigures, double> Of, Color Color)[]
        {
            ("E2E p90", f => f.E2e.P90, Colors.DarkBlue), ("E2E p50", f => f.E2e.P50, Colors.CornflowerBlue),
            ("TTFT p90", f => f.Ttft.P90, Colors.DarkRed), ("TTFT p50", f => f.Ttft.P50, Colors.Salmon),
        };
        foreach (var (name, of, color) in series)
        {
            var line = plot.Add.ScatterLine(rates, predicted.Select(of).ToArray());
            line.LegendText = $"predicted {name}";
            line.Color = color;
            line.LineWidth = 2;
            var first = plot.Add.ScatterPoints(loads.Select(l => l.Rate).ToArray(), loads.Select(l => of(l.Measured)).ToArray());
            first.LegendText = $"measured {name}";
            first.Color = color;
            first.MarkerSize = 9;
            first.MarkerShape = MarkerShape.FilledCircle;
            var twin = plot.Add.ScatterPoints(loads.Select(l => l.Rate).ToArray(), loads.Select(l => of(l.Twin)).ToArray());
            twin.Color = color;
            twin.MarkerSize = 9;
            twin.MarkerShape = MarkerShape.OpenCircle;
        }

        var edge = plot.Add.VerticalLine(capacity);
        edge.LinePattern = LinePattern.Dashed;
        edge.Color = Colors.Gray;
        edge.LegendText = "sustainable rate (fitted model)";

        plot.Title($"LENS serving prediction on the reference engine: {model.Buckets}, max_num_seqs {model.Buckets.MaxBatch}");
        plot.Axes.Bottom.Label.Text = "request rate (requests/s); open circles: second replay of the same trace";
        plot.Axes.Left.Label.Text = "latency (ms)";
        plot.Axes.AutoScale();
        plot.Axes.SetLimitsX(0, Math.Max(rates[^1], capacity) * 1.05);
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, 1200, 700);
    }
}
