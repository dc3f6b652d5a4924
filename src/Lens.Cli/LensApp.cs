using Lens.Cli.Commands;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli;

/// <summary>The <c>lens</c> command line. Exit codes: 0 ok, 1 failure, 2 usage error. Errors go to stderr.</summary>
public static class LensApp
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;

    public static async Task<int> RunAsync(string[] args)
    {
        if (Console.IsOutputRedirected && AnsiConsole.Profile.Width < 160)
        {
            AnsiConsole.Profile.Width = 160; // tables in logs and files: no wrapping at the 80-column default
        }

        DecimalInt32Converter.Install();
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("lens");
            config.PropagateExceptions();
            config.AddCommand<PlanCommand>("plan")
                .WithDescription("Write the profiling plan: two requests per decode bucket (method.md, \"Profiling\").")
                .WithExample("plan", "--prefill-buckets", "128,256,512", "--decode-buckets", "128,256,512,1024", "--out", "plan.csv");
            config.AddCommand<FitCommand>("fit")
                .WithDescription("Fit every bucket from measurements and write the model.")
                .WithExample("fit", "--prefill-buckets", "128,256,512", "--decode-buckets", "128,256,512,1024", "--measurements", "m.csv",
                    "--out", "model.json");
            config.AddCommand<PredictCommand>("predict")
                .WithDescription("Predict E2E, TTFT and TPOT for one request or a CSV of request pairs.")
                .WithExample("predict", "--model", "model.json", "--input-len", "300", "--output-len", "200")
                .WithExample("predict", "--model", "model.json", "--pairs", "pairs.csv", "--out", "predictions.csv");
            config.AddCommand<EvaluateCommand>("evaluate")
                .WithDescription("Error table (E2E, TTFT, TPOT: mean, median, P90, max) on held-out measurements, with baselines.")
                .WithExample("evaluate", "--model", "model.json", "--measurements", "heldout.csv", "--profiling", "m.csv");
            config.AddCommand<SimulateCommand>("simulate")
                .WithDescription("Simulate a workload trace on fitted deployments: TTFT/TPOT/E2E percentiles, throughput, SLO attainment.")
                .WithExample("simulate", "--model", "a.json", "--model", "b.json", "--rate", "2", "--slo-ttft", "500", "--slo-tpot", "50")
                .WithExample("simulate", "--model", "model.json", "--trace", "trace.csv", "--out", "pred.csv", "--max-num-seqs", "8");
            config.AddCommand<MonitorCommand>("monitor")
                .WithDescription("Monitor live traffic offline: windows of observed requests replayed under batching, slowdowns attributed to cells.")
                .WithExample("monitor", "--model", "model.json", "--observed", "measured.csv", "--window", "1000")
                .WithExample("monitor", "--model", "model.json", "--otlp", "traces.json", "--device", "npu-0", "--deployment", "llama");
            config.AddCommand<WhatIfCommand>("whatif")
                .WithDescription("Write the model of a bucket set never profiled, from a profiled model's cost curves A(p), S(B, D).")
                .WithExample("whatif", "--model", "model.json", "--prefill-buckets", "128,384,640", "--decode-buckets", "256,768,1280",
                    "--out", "whatif.json");
            config.AddCommand<AdviseCommand>("advise")
                .WithDescription("Recommend bucket edges under a budget, batch buckets for goodput, and replicas for a target rate.")
                .WithExample("advise", "--model", "model.json", "--trace", "trace.csv", "--slo-ttft", "500", "--slo-tpot", "50",
                    "--max-buckets", "4", "--out", "advice.json")
                .WithExample("advise", "--model", "model.json", "--trace", "trace.csv", "--out", "advice.json", "--emit", "vllm-neuron");
            config.AddCommand<StackCommand>("stack")
                .WithDescription("Show the buckets and scheduling policy a serving stack's own configuration gives (--stack), or write them in another stack's format.")
                .WithExample("stack", "--stack", "vllm-gaudi", "--stack-config", "gaudi.env")
                .WithExample("stack", "--stack", "nxdi", "--stack-config", "neuron_config.json", "--emit", "furiosa", "--out", "furiosa.json");
            CommandRegistry.Register(config);
        });

        try
        {
            return await app.RunAsync(args);
        }
        catch (CommandAppException ex)
        {
            // Plain writes: errors are read by scripts too, and must not be wrapped to a terminal width.
            Console.Error.WriteLine($"usage error: {UsageMessage(ex, args)}");
            Console.Error.WriteLine("Run 'lens --help' or 'lens <command> --help' for the options.");
            return Usage;
        }
        catch (Exception ex) when (IsUserFacing(ex))
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Failure;
        }
        catch (Exception ex)
        {
            // A bug rather than bad input: keep the trace, for the report.
            Console.Error.WriteLine($"internal error: {ex}");
            return Failure;
        }
    }

    /// <summary>The framework's message, or for a number that is not one, the option it was given to and why.</summary>
    private static string UsageMessage(CommandAppException ex, string[] args) =>
        ex.InnerException is WholeNumberException bad
            ? $"{WholeNumberException.OptionOf(args, bad.Text) ?? "an option"}: {bad.Message}"
            : ex.Message;

    /// <summary>Failures with a message meant for the user (bad files, bad lengths, unreachable servers): no stack trace.</summary>
    private static bool IsUserFacing(Exception ex) => ex is CliException or FormatException or ArgumentException or IOException
        or Client.LensApiException or Measurement.MeasurementFailedException or Measurement.ProfileRunException or Engine.EngineProfileException or Silo.LensConfigurationException
        or UnauthorizedAccessException or InvalidOperationException or HttpRequestException or TimeoutException or OperationCanceledException;
}

/// <summary>A failure of a command, with a message for the user.</summary>
public sealed class CliException(string message) : Exception(message);
