using System.ComponentModel;
using System.Globalization;
using Lens.Core;
using Lens.Otlp;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class MonitorSettings : CommandSettings
{
    [CommandOption("--model <FILE>")]
    [Description("Model JSON of the deployment that served the traffic.")]
    public string? Model { get; init; }

    [CommandOption("--observed <FILE>")]
    [Description("Observed requests CSV: arrival_ms,input_len,output_len,ttft_ms,e2e_ms[[,queue_ms,replica]] ('lens replay' output reads as it is).")]
    public string? Observed { get; init; }

    [CommandOption("--otlp <FILE>")]
    [Description("OTLP trace export in JSON (one export per file, or one per line as the OpenTelemetry Collector's file exporter writes).")]
    public string? Otlp { get; init; }

    [CommandOption("--device <NAME>")]
    [Description("With --otlp: the lens.device resource attribute of the spans to read (needed when the file holds several deployments).")]
    public string? Device { get; init; }

    [CommandOption("--deployment <NAME>")]
    [Description("With --otlp: the lens.deployment resource attribute of the spans to read.")]
    public string? Deployment { get; init; }

    [CommandOption("--window <N>")]
    [Description("Requests per window, in arrival order (default: the whole file in one window; 100..1,000,000).")]
    public int? Window { get; init; }

    [CommandOption("--consecutive <N>")]
    [Description("Windows running a cell must be out of band to be flagged (1..100, default 2).")]
    public int Consecutive { get; init; } = 2;

    [CommandOption("--baseline-windows <N>")]
    [Description("Judged windows that form each cell's traffic baseline, after which it is judged against that baseline rather than its profile (2..1000, default 10).")]
    public int BaselineWindows { get; init; } = 10;

    [CommandOption("--max-num-seqs <N>")]
    [Description("Sequences in flight per replica on the server (default: the largest batch bucket).")]
    public int? MaxNumSeqs { get; init; }

    [CommandOption("--replicas <N>")]
    [Description("Replicas behind the server's queue (1..1,024, default 1).")]
    public int Replicas { get; init; } = 1;

    [CommandOption("--json")]
    [Description("Print every window's report as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate()
    {
        if (Model is null || (Observed is null) == (Otlp is null))
        {
            return ValidationResult.Error("--model and one of --observed or --otlp are required");
        }

        if (Window is < 100 or > 1_000_000)
        {
            return ValidationResult.Error($"--window must be in 100..1000000; got {Window}");
        }

        if (Consecutive is < 1 or > 100)
        {
            return ValidationResult.Error($"--consecutive must be in 1..100; got {Consecutive}");
        }

        if (BaselineWindows is < 2 or > 1000)
        {
            return ValidationResult.Error($"--baseline-windows must be in 2..1000; got {BaselineWindows}");
        }

        if (Replicas is < 1 or > 1024)
        {
            return ValidationResult.Error($"--replicas must be in 1..1024; got {Replicas}");
        }

        return MaxNumSeqs is < 1 ? ValidationResult.Error($"--max-num-seqs must be at least 1; got {MaxNumSeqs}") : ValidationResult.Success();
    }
}

/// <summary>
/// <c>lens monitor</c>: the service's live-traffic analysis on a file (method.md, "Live traffic"): windows of observed requests
/// replayed through the deployment's serving simulation, residuals attributed to cost cells, cells flagged after consecutive windows.
/// </summary>
public sealed class MonitorCommand : Command<MonitorSettings>
{
    public override int Execute(CommandContext context, MonitorSettings settings, CancellationToken cancellationToken)
    {
        var model = CliFiles.ReadModel(settings.Model!);
        if (settings.MaxNumSeqs > model.Buckets.MaxBatch)
        {
            throw new CliException($"--max-num-seqs {settings.MaxNumSeqs} is above the largest batch bucket {model.Buckets.MaxBatch} of {settings.Model} " +
                                   $"(allowed 1..{model.Buckets.MaxBatch})");
        }

        var observed = settings.Observed is not null ? ReadObserved(settings.Observed) : ReadOtlp(settings);
        if (observed.Count == 0)
        {
            throw new CliException("no observed request to analyse");
        }

        var ordered = observed.OrderBy(o => o.ArrivalMs).ToArray();
        var size = settings.Window ?? ordered.Length;
        var options = new TrafficOptions(MaxNumSeqs: settings.MaxNumSeqs, Replicas: settings.Replicas);
        var monitor = new TrafficMonitor(settings.Consecutive, settings.BaselineWindows);
        var verdicts = new List<TrafficWindowVerdict>();
        for (var start = 0; start < ordered.Length; start += size)
        {
            var window = ordered.AsSpan(start, Math.Min(size, ordered.Length - start)).ToArray();
            if (window.Length < Math.Min(size, 100) && verdicts.Count > 0)
            {
                break; // a last window too small to judge anything
            }

            try
            {
                verdicts.Add(monitor.Next(TrafficAnalysis.Analyze(model, window, options)));
            }
            catch (ArgumentException ex)
            {
                throw new CliException($"window {verdicts.Count + 1}: {ex.Message}");
            }
        }

        if (settings.Json)
        {
            CliJson.Write(new
            {
                windows = verdicts.Select((v, i) => new
                {
                    window = i + 1,
                    requests = v.Report.Requests,
                    skipped = v.Report.Skipped,
                    ttftMape = v.Report.TtftMape,
                    e2eMape = v.Report.E2eMape,
                    commonShift = v.Report.CommonShift,
                    cells = v.Cells.Select(c => new
                    {
                        cell = c.Health.Cell.ToString(),
                        observations = c.Health.Observations,
                        steps = c.Health.Steps,
                        shift = c.Health.Shift,
                        shiftStandardError = c.Health.ShiftStandardError,
                        band = c.Band,
                        outOfBand = c.OutOfBand,
                        reference = c.Reference.ToString().ToLowerInvariant(),
                        baselineWindows = c.BaselineWindows,
                        baseline = c.Baseline,
                        deviation = c.Deviation,
                        deviationStandardError = c.DeviationStandardError,
                        consecutiveOutOfBand = c.ConsecutiveOutOfBand,
                        flagged = c.Flagged,
                        profiledMs = c.Health.ProfiledMs,
                        estimatedMs = c.Health.EstimatedMs,
                    }),
                }),
            });
            return verdicts[^1].Flagged.Any() ? 3 : LensApp.Ok;
        }

        var windows = new Table().Title($"{ordered.Length} observed requests in {verdicts.Count} window(s)")
            .AddColumns("window", "requests", "skipped", "TTFT MAPE %", "E2E MAPE %", "common shift %", "flagged");
        for (var i = 0; i < verdicts.Count; i++)
        {
            var r = verdicts[i].Report;
            windows.AddRow((i + 1).ToString(CultureInfo.InvariantCulture), r.Requests.ToString(CultureInfo.InvariantCulture),
                r.Skipped.ToString(CultureInfo.InvariantCulture), F(r.TtftMape), F(r.E2eMape), F(100 * r.CommonShift),
                string.Join(", ", verdicts[i].Flagged.Select(c => c.Health.Cell.ToString())));
        }

        AnsiConsole.Write(windows);
        var cells = new Table().Title($"cells in window {verdicts.Count}")
            .AddColumns("cell", "requests", "steps", "shift %", "+/- %", "judged by", "deviation %", "band %", "windows", "flagged", "profiled ms",
                "from traffic ms");
        foreach (var c in verdicts[^1].Cells)
        {
            var h = c.Health;
            cells.AddRow(h.Cell.ToString(), h.Observations.ToString(CultureInfo.InvariantCulture), h.Steps.ToString(CultureInfo.InvariantCulture),
                F(100 * h.Shift), F(100 * h.ShiftStandardError), Judge(c), c.Deviation is { } d ? F(100 * d) : "-", F(100 * c.Band),
                c.ConsecutiveOutOfBand.ToString(CultureInfo.InvariantCulture),
                c.Flagged ? "[red]yes[/]" : "no", F(h.ProfiledMs), h.EstimatedMs is { } e ? F(e) : "-");
        }

        AnsiConsole.Write(cells);
        return verdicts[^1].Flagged.Any() ? 3 : LensApp.Ok;
    }

    private static string Judge(CellVerdict c) => c.Reference == CellReference.Traffic ? "baseline" : $"profile ({c.BaselineWindows} learned)";

    private static List<ObservedRequest> ReadObserved(string path)
    {
        using var reader = CliFiles.Open(path, "--observed");
        var rows = LensCsv.ReadObserved(reader, path, out var failed);
        if (failed > 0)
        {
            Console.Error.WriteLine($"{failed} failed request(s) in {path} left out"); // stderr: --json keeps stdout clean
        }

        return [.. rows.Rows];
    }

    private static List<ObservedRequest> ReadOtlp(MonitorSettings settings)
    {
        var path = settings.Otlp!;
        using var reader = CliFiles.Open(path, "--otlp");
        var text = reader.ReadToEnd();
        var exports = text.TrimStart().StartsWith('{') && !text.Contains("}\n{", StringComparison.Ordinal)
            ? [text]
            : text.Split('\n').Where(l => l.Trim().Length > 0).ToArray();
        var byDeployment = new Dictionary<DeploymentRef, List<ObservedRequest>>();
        int ignored = 0, unrouted = 0, invalid = 0;
        for (var i = 0; i < exports.Length; i++)
        {
            OtlpIntake intake;
            try
            {
                intake = OtlpTraces.FromJson(System.Text.Encoding.UTF8.GetBytes(exports[i]), int.MaxValue);
            }
            catch (OtlpFormatException ex)
            {
                throw new CliException(exports.Length == 1 ? $"{path}: {ex.Message}" : $"{path}:{i + 1}: {ex.Message}");
            }

            (ignored, unrouted, invalid) = (ignored + intake.Ignored, unrouted + intake.Unrouted, invalid + intake.Invalid);
            foreach (var (deployment, requests) in intake.Requests)
            {
                if (!byDeployment.TryGetValue(deployment, out var list))
                {
                    byDeployment[deployment] = list = [];
                }

                list.AddRange(requests);
            }
        }

        Console.Error.WriteLine(
            $"{path}: {byDeployment.Values.Sum(l => l.Count)} LLM request spans; {ignored} other spans ignored, {unrouted} without lens.device/lens.deployment, {invalid} invalid");
        var chosen = byDeployment.Keys
            .Where(d => (settings.Device is null || d.Device == settings.Device) && (settings.Deployment is null || d.Deployment == settings.Deployment))
            .ToArray();
        return chosen.Length switch
        {
            1 => byDeployment[chosen[0]],
            0 => throw new CliException($"{path} holds no LLM request span of {Describe(settings)}; deployments in it: " +
                                        (byDeployment.Count == 0 ? "none" : string.Join(", ", byDeployment.Keys.Select(d => $"{d.Device}/{d.Deployment}")))),
            _ => throw new CliException($"{path} holds spans of several deployments ({string.Join(", ", chosen.Select(d => $"{d.Device}/{d.Deployment}"))}); " +
                                        "choose one with --device and --deployment"),
        };
    }

    private static string Describe(MonitorSettings s) => s.Device is null && s.Deployment is null ? "any deployment" : $"{s.Device ?? "*"}/{s.Deployment ?? "*"}";

    private static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("0.00", CultureInfo.InvariantCulture);
}
