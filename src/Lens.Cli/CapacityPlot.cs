using Lens.Core;
using ScottPlot;

namespace Lens.Cli;

/// <summary>
/// The capacity plan's picture: per candidate, cost per hour (chips when a price is missing) against p90 E2E of its fleet; the
/// cheapest marked; candidates that fail at the replica limit hollow. The SLO limits TTFT and TPOT, not E2E: the dashed line is
/// the E2E a request of the workload's median output length may take within them, TTFT + (O - 1) x TPOT.
/// </summary>
internal static class CapacityPlot
{
    public static void Write(string path, CapacityPlan plan, IReadOnlyList<TraceRequest> trace)
    {
        var plot = new Plot();
        var priced = plan.Candidates.All(c => c.CostPerHour is not null);
        double Y(CandidatePlan c) => priced ? c.CostPerHour!.Value : c.Chips;
        foreach (var c in plan.Candidates)
        {
            var point = plot.Add.ScatterPoints(new[] { c.E2eP90Ms }, new[] { Y(c) });
            point.MarkerSize = c.Cheapest ? 16 : 11;
            point.MarkerShape = c.Meets ? (c.Cheapest ? MarkerShape.FilledDiamond : MarkerShape.FilledCircle) : MarkerShape.OpenCircle;
            point.Color = c.Cheapest ? Colors.ForestGreen : c.Meets ? Colors.DarkBlue : Colors.Gray;
            var label = plot.Add.Text($"  {Path.GetFileName(c.Model)}: {c.Replicas} x {c.ChipsPerReplica} chips" +
                                      (c.Cheapest ? " (cheapest)" : c.Meets ? "" : " (fails)"), c.E2eP90Ms, Y(c));
            label.LabelFontSize = 13;
            label.LabelFontColor = point.Color;
        }

        var outputs = trace.Select(r => r.OutputLength).Order().ToArray();
        var median = outputs[outputs.Length / 2];
        var bound = plan.Slo.TtftMs + ((median - 1) * plan.Slo.TpotMs);
        var line = plot.Add.VerticalLine(bound);
        line.LinePattern = LinePattern.Dashed;
        line.Color = Colors.DarkRed;
        line.LegendText = $"SLO for a median request (O = {median}): {plan.Slo.TtftMs:0.#} + {median - 1} x {plan.Slo.TpotMs:0.#} ms";

        plot.Title($"Capacity for {plan.Requests} requests at {plan.OfferedRequestsPerSecond:0.##} req/s, " +
                   $"{plan.Slo.Attainment:P0} within TTFT {plan.Slo.TtftMs:0.#} ms / TPOT {plan.Slo.TpotMs:0.#} ms ({CapacityReport.Routing(plan.Routing)})");
        plot.Axes.Bottom.Label.Text = "p90 E2E of the fleet (ms)";
        plot.Axes.Left.Label.Text = priced ? "cost per hour" : "chips (no price given)";
        plot.Axes.AutoScale();
        var xs = plan.Candidates.Select(c => c.E2eP90Ms).Append(bound).ToArray();
        var ys = plan.Candidates.Select(Y).ToArray();
        plot.Axes.SetLimits(0, xs.Max() * 1.35, 0, ys.Max() * 1.2);
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(path, 1200, 700);
    }
}
