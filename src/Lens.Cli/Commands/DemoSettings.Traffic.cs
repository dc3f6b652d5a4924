using System.ComponentModel;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

/// <summary>The options of <c>lens demo --traffic</c> (<see cref="TrafficDemo"/>).</summary>
public sealed partial class DemoSettings
{
    [CommandOption("--traffic")]
    [Description("The live-traffic demo: profile the batched engine, serve Poisson traffic reported as OTLP spans to a LENS service, slow one cell, then every cell, and check what the monitoring finds.")]
    public bool Traffic { get; init; }

    [CommandOption("--load <FRACTION>")]
    [Description("--traffic: the request rate as a fraction of the fitted model's sustainable rate, in (0, 1]].")]
    [DefaultValue(0.6)]
    public double Load { get; init; } = 0.6;

    [CommandOption("--window <N>")]
    [Description("--traffic: requests per analysed window (the service's Lens:Grains:TrafficWindow), 50..10000.")]
    [DefaultValue(1000)]
    public int Window { get; init; } = 1000;

    [CommandOption("--baseline-windows <N>")]
    [Description("--traffic: windows with nothing changed in which each cell's traffic baseline is learned (the service's Lens:Grains:TrafficBaselineWindows), 2..100; cells are judged against their profile meanwhile.")]
    [DefaultValue(10)]
    public int BaselineWindows { get; init; } = 10;

    [CommandOption("--steady-windows <N>")]
    [Description("--traffic: windows with nothing changed after the baseline windows, judged against the baseline, 1..100.")]
    [DefaultValue(10)]
    public int SteadyWindows { get; init; } = 10;

    [CommandOption("--cell-windows <N>")]
    [Description("--traffic: most windows with one cell slowed, 1..100; the phase ends when the cell is flagged.")]
    [DefaultValue(3)]
    public int CellWindows { get; init; } = 3;

    [CommandOption("--all-windows <N>")]
    [Description("--traffic: windows with every cell slowed, 1..100.")]
    [DefaultValue(2)]
    public int AllWindows { get; init; } = 2;

    [CommandOption("--cell-slowdown <M>")]
    [Description("--traffic: the time multiplier of the one slowed cell, in (1, 10]].")]
    [DefaultValue(1.3)]
    public double CellSlowdown { get; init; } = 1.3;

    [CommandOption("--all-slowdown <M>")]
    [Description("--traffic: the time multiplier of every cell in the last phase, in (1, 10]].")]
    [DefaultValue(1.2)]
    public double AllSlowdown { get; init; } = 1.2;

    private string? ValidateTraffic()
    {
        if (!Traffic)
        {
            return null;
        }

        if (Serving || Direct)
        {
            return "--traffic is its own demo: it serves the engine over HTTP (no --direct) and cannot be combined with --serving";
        }

        if (!(Load > 0 && Load <= 1) || Window is < 50 or > 10_000 || SteadyWindows is < 1 or > 100 || CellWindows is < 1 or > 100 ||
            AllWindows is < 1 or > 100 || BaselineWindows is < 2 or > 100)
        {
            return $"--load must be in (0, 1], --window in 50..10000, --baseline-windows in 2..100 and the other window counts in 1..100; got " +
                   $"{Load}, {Window}, {BaselineWindows}, {SteadyWindows}, {CellWindows}, {AllWindows}";
        }

        return CellSlowdown is > 1 and <= 10 && AllSlowdown is > 1 and <= 10
            ? null
            : $"--cell-slowdown and --all-slowdown must be in (1, 10]; got {CellSlowdown} and {AllSlowdown}";
    }
}
