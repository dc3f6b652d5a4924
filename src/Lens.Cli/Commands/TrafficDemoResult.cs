using System.Globalization;
using System.Text.Json;
using Lens.Abstractions;
using Lens.Core;
using Spectre.Console;

namespace Lens.Cli.Commands;

/// <summary>One analysed window of the traffic demo, as the service reported it.</summary>
internal sealed record TrafficDemoWindow(int Index, string Phase, int Requests, double MeasuredE2eP50Ms, double? TtftMape, double? E2eMape,
    double CommonShift, string[] Flagged, string[] OutOfBand, TrafficCell[] Cells, bool Disturbed = false);

/// <summary>A check of the demo: what was asked, the figure found, and whether it was met.</summary>
internal sealed record TrafficDemoCheck(string Name, string Figure, bool Met);

/// <summary>The traffic demo's figures and checks (issue 19's "done when").</summary>
internal sealed record TrafficDemoResult(
    string Engine,
    string Buckets,
    double CapacityPerSecond,
    double RatePerSecond,
    int Window,
    string SlowedCell,
    double CellSlowdown,
    double AllSlowdown,
    int FlaggedAfterWindows,
    double ProfiledCellMs,
    double ReprofiledSlowedCellMs,
    double? EstimatedCellMs,
    double? EstimateError,
    double CommonShift,
    double CommonShiftError,
    int SpansSentByTenantB,
    long ReceivedByTenantAFromB,
    bool TenantBSeesTenantA,
    TrafficDemoCheck[] Checks,
    bool Met,
    TrafficDemoWindow[] Windows)
{
    public static TrafficDemoResult Judge(string engine, string buckets, double capacity, double rate, DemoSettings settings, BucketId cell,
        int firstFlag, double profiledCost, double slowedCost, double? estimate, TrafficDemoWindow[] steady, TrafficDemoWindow[] cellPhase,
        TrafficDemoWindow[] allPhase, int sentByB, long receivedFromB, bool bSeesA)
    {
        var name = cell.ToString();
        var estimateError = estimate / slowedCost - 1;
        var common = allPhase.Length > 0 ? allPhase[^1].CommonShift : double.NaN;
        // The slowdown is a change from the steady windows: the common shift they already had (the device under this traffic against
        // its profile of groups alone) is the baseline the slowed windows are compared with.
        var baseline = Median(steady.Select(w => w.CommonShift));
        var commonError = ((1 + common) / (1 + baseline) / settings.AllSlowdown) - 1;
        var othersFlagged = cellPhase.SelectMany(w => w.Flagged).Where(c => c != name).Distinct(StringComparer.Ordinal).ToArray();
        var blamed = allPhase.SelectMany(w => w.OutOfBand.Concat(w.Flagged)).Distinct(StringComparer.Ordinal).ToArray();
        TrafficDemoCheck[] checks =
        [
            new("steady: no cell flagged",
                $"{steady.Count(w => w.Flagged.Length > 0)} of {steady.Length} windows flag a cell ({steady.Count(w => w.Phase == "learn")} learning the baseline, " +
                $"{steady.Count(w => w.Phase != "learn")} judged against it; {steady.Count(w => w.Disturbed)} with the machine disturbed)",
                steady.All(w => w.Flagged.Length == 0)),
            new($"one cell x{settings.CellSlowdown}: {name} flagged within {settings.CellWindows} windows",
                firstFlag > 0 ? $"flagged after {firstFlag}" : $"not flagged in {cellPhase.Length}", firstFlag > 0),
            new("one cell: no other cell flagged", othersFlagged.Length == 0 ? "none" : string.Join(' ', othersFlagged), othersFlagged.Length == 0),
            new($"one cell: estimate within {TrafficDemo.Tolerance:P0} of the re-profiled slowed cost",
                estimate is { } e ? F($"{e:0.000} ms vs {slowedCost:0.000} ms ({TrafficDemo.Percent(estimateError)}); profiled {profiledCost:0.000} ms") : "no estimate offered",
                estimateError is { } x && Math.Abs(x) <= TrafficDemo.Tolerance),
            new($"all cells x{settings.AllSlowdown}: common shift within {TrafficDemo.Tolerance:P0}",
                F($"{common:+0.000;-0.000} against the steady windows' median {baseline:+0.000;-0.000} ({TrafficDemo.Percent(commonError)} as a cost ratio)"),
                Math.Abs(commonError) <= TrafficDemo.Tolerance),
            new("all cells: no cell blamed", blamed.Length == 0 ? "none" : string.Join(' ', blamed), blamed.Length == 0),
            new("tenant B naming A's deployment: nothing reaches A, B cannot read it",
                F($"{sentByB} spans sent, {receivedFromB} received, report {(bSeesA ? "visible" : "404")}"), sentByB > 0 && receivedFromB == 0 && !bSeesA),
        ];
        return new TrafficDemoResult(engine, buckets, capacity, rate, settings.Window, name, settings.CellSlowdown, settings.AllSlowdown, firstFlag,
            profiledCost, slowedCost, estimate, estimateError, common, commonError, sentByB, receivedFromB, bSeesA, checks, checks.All(c => c.Met),
            [.. steady, .. cellPhase, .. allPhase]);
    }

    public string ToJson() => JsonSerializer.Serialize(this, CliJson.Options);

    public void Write(IAnsiConsole ui)
    {
        var table = new Table().Title("issue 19, done when").AddColumns("check", "figure", "");
        foreach (var c in Checks)
        {
            table.AddRow(Markup.Escape(c.Name), Markup.Escape(c.Figure), c.Met ? "[green]met[/]" : "[red]missed[/]");
        }

        ui.Write(table);
        ui.MarkupLine(Met ? "[green]all met[/]" : $"[red]{Checks.Count(c => !c.Met)} not met[/]");
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray();
        return sorted.Length == 0 ? 0 : RepeatStatistic.QuantileOfSorted(sorted, 0.5);
    }
}
