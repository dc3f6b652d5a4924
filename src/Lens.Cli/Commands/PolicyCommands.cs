using System.Globalization;
using Lens.Core;
using Spectre.Console;

namespace Lens.Cli.Commands;

/// <summary><c>lens plan</c> under a scheduling policy other than prefill-first padded: the plan CSV, its cells, reach and cost.</summary>
internal static class PolicyPlanOutput
{
    public static int Write(PlanSettings settings, BucketSet buckets)
    {
        var policy = settings.PolicyFromOptions();
        PolicyPlan plan;
        try
        {
            plan = PolicyPlanner.Create(buckets, policy, new PlanOptions(settings.Repeats, settings.MaxSpan, settings.Seed));
        }
        catch (PlanException ex)
        {
            throw new CliException(ex.Message);
        }

        CliFiles.WriteAtomically(settings.Out!, w => LensCsv.WritePlan(w, plan.Rows));
        var stepsPerWidth = plan.Cost.DecodeWidth == 0 ? 0 : Math.Round((double)plan.Cost.DecodeSteps / settings.Repeats / plan.Cost.DecodeWidth, 4);
        if (settings.Json)
        {
            CliJson.Write(new
            {
                buckets = buckets.ToString(),
                policy = policy.Name,
                requests = plan.Cost.Requests,
                groups = plan.Rows.Count,
                steps = plan.Cost.DecodeSteps,
                cellWidth = plan.Cost.DecodeWidth,
                stepsPerCellWidth = stepsPerWidth,
                cells = plan.Cells.Select(c => new { cell = c.Name, measurements = c.Measurements, distinctCounts = c.DistinctCounts, problem = c.Problem }),
                unreachable = plan.Unreachable.Select(u => new { cell = u.Cell, reason = u.Reason }),
                notIdentifiable = plan.NotIdentifiable,
                output = settings.Out,
            });
            return LensApp.Ok;
        }

        var table = new Table().Title($"{policy.Name}: {buckets}").AddColumns("cell", "measurements", "distinct counts", "note");
        foreach (var c in plan.Cells)
        {
            var note = plan.Unreachable.FirstOrDefault(u => u.Cell == c.Name).Reason ?? c.Problem ?? (plan.NotIdentifiable.Contains(c.Name) ? "not identifiable" : "");
            table.AddRow(Markup.Escape(c.Name), c.Measurements.ToString(CultureInfo.InvariantCulture), c.DistinctCounts.ToString(CultureInfo.InvariantCulture), Markup.Escape(note));
        }

        AnsiConsole.Write(table);
        AnsiConsole.MarkupLineInterpolated(
            $"Wrote [bold]{plan.Rows.Count}[/] groups ({plan.Cost.Requests} requests) to [bold]{settings.Out}[/]; each group's identical requests are released at once.");
        AnsiConsole.MarkupLineInterpolated(
            $"Device time: {plan.Cost.DecodeSteps} steps, {stepsPerWidth:0.###}x one pass over the reachable cells' width ({plan.Cost.DecodeWidth} tokens) per repeat.");
        if (plan.Unreachable.Count > 0)
        {
            AnsiConsole.MarkupLineInterpolated($"Unreachable ({plan.Unreachable.Count}): {string.Join("; ", plan.Unreachable.Select(u => $"{u.Cell}: {u.Reason}"))}");
        }

        if (plan.NotIdentifiable.Count > 0)
        {
            AnsiConsole.MarkupLineInterpolated($"Not identifiable from the plan: {string.Join(", ", plan.NotIdentifiable)}");
        }

        return LensApp.Ok;
    }
}

/// <summary><c>lens fit</c> under a scheduling policy other than prefill-first padded: the policy fit (<see cref="PolicyFitter"/>).</summary>
internal static class PolicyFitOutput
{
    public static int Fit(FitSettings settings, BucketSet buckets, RepeatStatistic statistic, CsvRows<MeasuredRequest> rows)
    {
        var policy = settings.PolicyFromOptions();
        var scheduler = PolicyScheduler.For(buckets, policy);
        if (MeasurementGroups.PartialRows(rows.Rows) is [var partial, ..])
        {
            var m = rows.Rows[partial];
            throw new CliException($"{rows.Source}:{rows.Lines[partial]}: column 'group': group {m.Group} has " +
                                   $"{MeasurementGroups.RowsOf(rows.Rows, m.Group!.Value)} rows but batch {m.Batch}; a group is used only whole");
        }

        for (var n = 0; n < rows.Rows.Count; n++)
        {
            if (scheduler.CheckRequest(rows.Rows[n].InputLength, rows.Rows[n].OutputLength) is { } reason)
            {
                throw new CliException($"{rows.Source}:{rows.Lines[n]}: {reason}");
            }
        }

        var fit = PolicyFitter.Fit(buckets, policy, rows.Rows, statistic, settings.Level);
        var unfitted = fit.Unfitted.ToArray();
        if (unfitted.Length > 0 && !settings.AllowPartial)
        {
            throw new CliException($"{settings.Measurements}: not enough data for {string.Join(", ", unfitted.Select(c => $"{c.Name} ({c.Note})"))}; " +
                                   "measure the plan's rows for them, or pass --allow-partial");
        }

        CliFiles.WriteAtomically(settings.Out!, w => w.Write(ModelJson.Serialize(fit.Model)));
        if (settings.Json)
        {
            CliJson.Write(new
            {
                policy = policy.Name,
                cells = fit.Cells.Where(c => c.Measurements > 0 || c.Note is not null)
                    .Select(c => new { cell = c.Name, ms = Finite(c.Ms), standardError = c.StandardError, measurements = c.Measurements, note = c.Note }),
                statistic = statistic.ToString(),
                fit.Model.RelativeNoise,
                fit.Model.Calibration,
                output = settings.Out,
            });
            return LensApp.Ok;
        }

        var table = new Table().Title($"{policy.Name}: {buckets} fitted from {rows.Rows.Count} measurements ({fit.Points} releases, {fit.Equations} equations, {statistic} of repeats)")
            .AddColumns("cell", "fit (ms)", "std. error (ms)", "measurements", "note");
        foreach (var c in fit.Cells.Where(c => c.Measurements > 0 || c.Note is not null))
        {
            table.AddRow(Markup.Escape(c.Name), F(c.Ms), F(c.StandardError), c.Measurements.ToString(CultureInfo.InvariantCulture), Markup.Escape(c.Note ?? ""));
        }

        AnsiConsole.Write(table);
        AnsiConsole.MarkupLineInterpolated($"Wrote [bold]{settings.Out}[/].");
        return LensApp.Ok;
    }

    private static double? Finite(double v) => double.IsNaN(v) ? null : v;

    private static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("0.####", CultureInfo.InvariantCulture);
}
