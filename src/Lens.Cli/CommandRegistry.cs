using Lens.Cli.Commands;
using Spectre.Console.Cli;

namespace Lens.Cli;

/// <summary>Commands that measure or serve: profile, demo, engine, serve.</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        config.AddCommand<ProfileCommand>("profile")
            .WithDescription("Profile a live OpenAI-compatible server: warm-up, the plan one request at a time, resumable CSV output.")
            .WithExample("profile", "--endpoint", "http://127.0.0.1:8000/v1", "--model", "llama", "--plan", "plan.csv", "--out", "m.csv")
            .WithExample("profile", "--endpoint", "http://127.0.0.1:8000/v1", "--preset", "nxdi", "--max-context", "1024", "--seq-len", "2048",
                "--repeats", "3", "--out", "m.csv", "--fit", "model.json");
        config.AddCommand<ReplayCommand>("replay")
            .WithDescription("Replay a trace against a live OpenAI-compatible server at its arrival times: per-request TTFT/TPOT/E2E, percentiles, throughput.")
            .WithExample("replay", "--endpoint", "http://127.0.0.1:8000/v1", "--model", "llama", "--trace", "trace.csv", "--out", "measured.csv");
        config.AddCommand<DemoCommand>("demo")
            .WithDescription("The main job on the embedded default: profile the built-in reference engine, fit, score held-out requests; --serving: predictions under load.")
            .WithExample("demo", "--serving");
        config.AddCommand<ServeCommand>("serve")
            .WithDescription("Run a LENS silo with its HTTP API (embedded by default; azure-table for durable, multi-silo clusters).")
            .WithExample("serve", "--tenant", "acme", "--api-key-env", "LENS_ACME_KEY", "--http-port", "5080");
        config.AddCommand<HealthCommand>("health")
            .WithDescription("Exit 0 when a LENS server's health endpoint answers 2xx (the container image's HEALTHCHECK).")
            .WithExample("health", "--url", "http://127.0.0.1:8080/health");
        config.AddCommand<StatusCommand>("status")
            .WithDescription("A LENS server's deployments, profiling progress and buckets.")
            .WithExample("status", "--server", "http://127.0.0.1:5080", "--api-key-env", "LENS_ACME_KEY", "--device", "npu-0");
        config.AddCommand<BenchCommand>("bench")
            .WithDescription("Load generator: concurrent single or batched predictions against a running service, over HTTP or the Orleans client.")
            .WithExample("bench", "--server", "http://127.0.0.1:5080", "--api-key-env", "LENS_ACME_KEY", "--device", "cpu-0", "--deployment", "llama-0123456789",
                "--clients", "16", "--requests", "50000");
        config.AddCommand<CapacityCommand>("capacity")
            .WithDescription("How many replicas of which layout meet an SLO for a workload, at what cost; the cheapest marked.")
            .WithExample("capacity", "--models", "tp1.json", "tp2.json", "--trace", "trace.csv", "--slo-ttft", "400", "--slo-tpot", "40",
                "--attainment", "0.9", "--chips", "1,2", "--price-per-chip-hour", "1.0", "--out", "capacity.json");
        config.AddCommand<CapacityCheckCommand>("capacity-check")
            .WithDescription("Issue 20's end-to-end check: profile two layouts, plan a fleet, replay it and one replica fewer against digital twins.")
            .WithExample("capacity-check", "--engine", "nxdi-small-batch", "--degrees", "1,2", "--requests", "240", "--load", "2.5");
        config.AddBranch("engine", engine =>
        {
            engine.SetDescription("The built-in bucketed reference engine (a static-shape transformer on the CPU).");
            engine.AddCommand<EngineServeCommand>("serve")
                .WithDescription("Serve the reference engine OpenAI-compatibly on 127.0.0.1, or with --twin the digital twin of a fitted model.")
                .WithExample("engine", "serve", "--profile", "nxdi-small", "--port", "8000")
                .WithExample("engine", "serve", "--twin", "model.json", "--port", "8001", "--replicas", "4");
            engine.AddCommand<EngineProfilesCommand>("profiles").WithDescription("List the shipped engine profiles.");
            engine.AddCommand<EngineStepsCommand>("steps")
                .WithDescription("Time a decode step at every (batch, decode) bucket and each prefill bucket, in-process.")
                .WithExample("engine", "steps", "--profile", "nxdi-small-batch", "--steps", "100");
        });
    }
}
