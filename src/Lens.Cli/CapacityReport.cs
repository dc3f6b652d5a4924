using System.Globalization;
using Lens.Core;
using Spectre.Console;

namespace Lens.Cli;

/// <summary>The capacity plan as a table and as the <c>--out</c> / <c>--json</c> document (issue 20's field names).</summary>
internal static class CapacityReport
{
    public static object Document(CapacityPlan plan) => new
    {
        slo = new { ttftMs = plan.Slo.TtftMs, tpotMs = plan.Slo.TpotMs, attainment = plan.Slo.Attainment },
        routing = plan.Routing,
        requests = plan.Requests,
        offeredRequestsPerSecond = plan.OfferedRequestsPerSecond,
        cheapest = plan.Cheapest?.Model,
        candidates = plan.Candidates,
    };

    public static Table Table(CapacityPlan plan)
    {
        var slo = plan.Slo;
        var table = new Table()
            .Title($"{plan.Requests} requests at {F(plan.OfferedRequestsPerSecond)} req/s; SLO: TTFT <= {F(slo.TtftMs)} ms and TPOT <= " +
                   $"{F(slo.TpotMs)} ms for {slo.Attainment.ToString("P0", CultureInfo.InvariantCulture)} of requests; routing {Routing(plan.Routing)}")
            .AddColumns("model", "replicas x chips", "chips", "cost/h", "cost/M out tok", "attainment", "TTFT p90", "TPOT p90", "E2E p90",
                "util", "headroom req/s", "");
        foreach (var c in plan.Candidates)
        {
            table.AddRow(
                Markup.Escape(Path.GetFileName(c.Model)),
                $"{c.Replicas} x {c.ChipsPerReplica}",
                c.Chips.ToString(CultureInfo.InvariantCulture),
                c.CostPerHour is { } cost ? F(cost) : "no price",
                c.CostPerMillionOutputTokens is { } m ? F(m) : "no price",
                c.Attainment.ToString("P1", CultureInfo.InvariantCulture),
                F(c.TtftP90Ms), F(c.TpotP90Ms), F(c.E2eP90Ms),
                c.Utilization.ToString("P0", CultureInfo.InvariantCulture),
                c.HeadroomRequestsPerSecond is { } h ? (c.HeadroomIsLowerBound ? ">= " : "") + F(h) : "-",
                c.Cheapest ? "[green]cheapest[/]" : c.Meets ? "" : $"[red]fails at {c.Replicas}[/]");
        }

        return table;
    }

    public static string Routing(FleetRouting routing) => FleetRoutingNames.Name(routing);

    public static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("0.##", CultureInfo.InvariantCulture);
}
