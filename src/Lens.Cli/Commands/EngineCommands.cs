using System.ComponentModel;
using System.Net;
using Lens.Engine;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class EngineServeSettings : CommandSettings
{
    [CommandOption("--profile <PROFILE>")]
    [Description("Engine profile: a shipped name (see 'lens engine profiles') or a JSON file.")]
    [DefaultValue(EngineHost.DefaultProfile)]
    public string Profile { get; init; } = EngineHost.DefaultProfile;

    [CommandOption("--port <PORT>")]
    [Description("Port to listen on (0 picks a free one).")]
    [DefaultValue(8000)]
    public int Port { get; init; } = 8000;

    [CommandOption("--twin <MODEL>")]
    [Description("Serve the digital twin of a fitted model file instead of the reference engine: the model's scheduler, each step sleeping its fitted cost.")]
    public string? Twin { get; init; }

    [CommandOption("--replicas <R>")]
    [Description("With --twin: replicas behind one shared queue (1..64).")]
    public int? Replicas { get; init; }

    [CommandOption("--host <ADDRESS>")]
    [Description("With --twin: the IP address to listen on (default 127.0.0.1); the reference engine listens on 127.0.0.1 only.")]
    public string? Host { get; init; }

    [CommandOption("--name <ID>")]
    [Description("With --twin: the model id served (default: the model file's name without extension).")]
    public string? Name { get; init; }

    public override ValidationResult Validate()
    {
        if (Port is < 0 or > 65535)
        {
            return ValidationResult.Error($"--port must be in 0..65535; got {Port}");
        }

        if (Twin is null && (Replicas is not null || Host is not null || Name is not null))
        {
            return ValidationResult.Error("--replicas, --host and --name go with --twin (the reference engine is one replica on 127.0.0.1)");
        }

        if (Replicas is { } r && r is < 1 or > DigitalTwin.MaxReplicas)
        {
            return ValidationResult.Error($"--replicas must be in 1..{DigitalTwin.MaxReplicas}; got {r}");
        }

        if (Host is not null && !IPAddress.TryParse(Host, out _))
        {
            return ValidationResult.Error($"--host '{Host}' is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)");
        }

        return Name is not null && (Name.Length is 0 or > 256 || Name.Any(char.IsWhiteSpace))
            ? ValidationResult.Error("--name must be 1 to 256 characters without spaces")
            : ValidationResult.Success();
    }
}

/// <summary>Serves the reference engine, or the digital twin of a fitted model, OpenAI-compatibly until Ctrl+C.</summary>
public sealed class EngineServeCommand : AsyncCommand<EngineServeSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, EngineServeSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Twin is { } modelPath)
        {
            var model = CliFiles.ReadModel(modelPath, "--twin");
            if (DigitalTwin.Check(model) is { } problem)
            {
                throw new CliException($"--twin '{modelPath}': {problem}");
            }

            var name = settings.Name ?? Path.GetFileNameWithoutExtension(modelPath);
            using var twin = DigitalTwin.Create(model, settings.Replicas ?? 1, name);
            await using var twinServer = await EngineServer.StartAsync(twin, settings.Port,
                settings.Host is null ? null : IPAddress.Parse(settings.Host), cancellationToken);
            AnsiConsole.MarkupLineInterpolated(
                $"Serving the twin '{name}' of {modelPath} ({model.Buckets}, {twin.Replicas} replica(s) behind one queue) at [bold]{twinServer.BaseAddress}[/]; Ctrl+C stops.");
            return await WaitForCtrlCAsync(cancellationToken);
        }

        using var engine = ReferenceEngine.Create(EngineHost.LoadProfile(settings.Profile));
        await using var server = await EngineServer.StartAsync(engine, settings.Port, cancellationToken);
        AnsiConsole.MarkupLineInterpolated($"Serving reference engine '{engine.Profile.Name}' ({engine.Buckets}) at [bold]{server.BaseAddress}[/]; Ctrl+C stops.");
        return await WaitForCtrlCAsync(cancellationToken);
    }

    private static async Task<int> WaitForCtrlCAsync(CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.WriteLine("Stopping.");
        }

        return LensApp.Ok;
    }
}

/// <summary>Lists the shipped engine profiles.</summary>
public sealed class EngineProfilesCommand : Command<EmptyCommandSettings>
{
    public override int Execute(CommandContext context, EmptyCommandSettings settings, CancellationToken cancellationToken)
    {
        var table = new Table().AddColumns("name", "model", "buckets", "batch buckets", "file");
        foreach (var name in EngineProfiles.Names)
        {
            var path = EngineProfiles.Path(name);
            var p = EngineProfile.Load(path);
            table.AddRow(name, $"{p.Layers} layers, hidden {p.Hidden}, {p.Heads}/{p.KvHeads} heads, ffn {p.Ffn}, vocab {p.Vocab}",
                p.Validate(path).ToString(), string.Join(',', p.BatchBuckets), path);
        }

        AnsiConsole.Write(table);
        return LensApp.Ok;
    }
}

public sealed class EngineStepsSettings : CommandSettings
{
    [CommandOption("--profile <PROFILE>")]
    [Description("Engine profile: a shipped name (see 'lens engine profiles') or a JSON file.")]
    [DefaultValue("nxdi-small-batch")]
    public string Profile { get; init; } = "nxdi-small-batch";

    [CommandOption("--steps <N>")]
    [Description("Decode steps timed in each (batch, decode) bucket.")]
    [DefaultValue(100)]
    public int Steps { get; init; } = 100;

    [CommandOption("--json")]
    [Description("Write the table as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate() =>
        Steps is < 1 or > 10_000 ? ValidationResult.Error($"--steps must be in 1..10000; got {Steps}") : ValidationResult.Success();
}

/// <summary>Times the engine's compiled shapes in-process: a decode step at every (batch, decode) bucket, each prefill bucket.</summary>
public sealed class EngineStepsCommand : AsyncCommand<EngineStepsSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, EngineStepsSettings settings, CancellationToken cancellationToken)
    {
        using var engine = ReferenceEngine.Create(EngineHost.LoadProfile(settings.Profile));
        var table = await StepCosts.MeasureAsync(engine, settings.Steps, prefillRuns: 3, cancellationToken);
        if (settings.Json)
        {
            CliJson.Write(table);
            return LensApp.Ok;
        }

        var decode = engine.Buckets.Decode;
        var grid = new Table().AddColumn("B").Title($"{table.Profile}: ms per decode step, median (p10), by batch and decode bucket");
        foreach (var d in decode)
        {
            grid.AddColumn(new TableColumn($"D {d}").RightAligned());
        }

        foreach (var batch in engine.BatchBuckets)
        {
            grid.AddRow([batch.ToString(), .. decode.Select(d => table.Steps.FirstOrDefault(s => s.Batch == batch && s.DecodeBucket == d)
                is { } s ? $"{s.MedianMs:F2} ({s.P10Ms:F2})" : "-")]);
        }

        AnsiConsole.Write(grid);
        AnsiConsole.WriteLine("prefill alone, ms (median of 3): " + string.Join(", ", table.Prefills.Select(p => $"{p.Bucket}: {p.MedianMs:F1}")));
        return LensApp.Ok;
    }
}

