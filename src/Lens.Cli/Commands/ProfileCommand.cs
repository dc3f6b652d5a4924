using System.ComponentModel;
using System.Text.Json;
using Lens.Abstractions;
using Lens.Core;
using Lens.Measurement;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class ProfileSettings : BucketSettings
{
    [CommandOption("--endpoint <URL>")]
    [Description("The server's OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1 (vLLM on Neuron or Gaudi, RBLN, Furiosa).")]
    public string? Endpoint { get; init; }

    [CommandOption("--model <NAME>")]
    [Description("The served model's id (default: the only model the server lists).")]
    public string? Model { get; init; }

    [CommandOption("--plan <FILE>")]
    [Description("Plan CSV from 'lens plan'. Without it, give the bucket options and the plan is made here.")]
    public string? Plan { get; init; }

    [CommandOption("--out <FILE>")]
    [Description("Measurements CSV; each finished request is appended at once, and a re-run skips what is already there.")]
    public string? Out { get; init; }

    [CommandOption("--repeats <R>")]
    [Description("Repeats: of each point when planning here, or runs over a given plan.")]
    [DefaultValue(1)]
    public int Repeats { get; init; } = 1;

    [CommandOption("--max-span <N>")]
    [Description("When planning here: cap on the decode steps between a bucket's two requests.")]
    public int? MaxSpan { get; init; }

    [CommandOption("--seed <S>")]
    [Description("When planning here: seed of the interleaved order.")]
    [DefaultValue(0)]
    public int Seed { get; init; }

    [CommandOption("--warmup <N>")]
    [Description("Untimed requests per bucket before timing starts.")]
    [DefaultValue(1)]
    public int Warmup { get; init; } = 1;

    [CommandOption("--api-key-env <VAR>")]
    [Description("Environment variable holding a bearer key (never printed or written).")]
    public string? ApiKeyEnv { get; init; }

    [CommandOption("--text-prompt")]
    [Description("Send text prompts (for servers that refuse token ids); their token count is checked from usage.prompt_tokens.")]
    public bool TextPrompt { get; init; }

    [CommandOption("--token-id-max <N>")]
    [Description("Largest token id (exclusive) of token-id prompts; keep it within the model's vocabulary.")]
    [DefaultValue(1000)]
    public int TokenIdMax { get; init; } = 1000;

    [CommandOption("--timeout <SECONDS>")]
    [Description("Limit of one request attempt.")]
    [DefaultValue(300)]
    public int TimeoutSeconds { get; init; } = 300;

    [CommandOption("--retries <N>")]
    [Description("Retries of a request (or a group) after a transient fault (5xx, timeout, refused connection), with exponential backoff from 1 s: at most N + 1 HTTP requests each.")]
    [DefaultValue(3)]
    public int Retries { get; init; } = 3;

    [CommandOption("--fit <FILE>")]
    [Description("After profiling, fit the buckets and write the model here (needs the bucket options).")]
    public string? Fit { get; init; }

    [CommandOption("--statistic <NAME>")]
    [Description("With --fit: how repeats are reduced (min, median, mean, pNN).")]
    [DefaultValue("min")]
    public string Statistic { get; init; } = "min";

    [CommandOption("--server <URL>")]
    [Description("Have a LENS server profile a deployment instead (with --api-key-env for your tenant's key, --device, --deployment or --spec).")]
    public string? Server { get; init; }

    [CommandOption("--device <NAME>")]
    [Description("With --server: the device.")]
    public string? Device { get; init; }

    [CommandOption("--deployment <ID>")]
    [Description("With --server: the deployment to profile.")]
    public string? Deployment { get; init; }

    [CommandOption("--spec <FILE>")]
    [Description("With --server: a deployment spec (JSON) to create, or find if it exists, and profile.")]
    public string? Spec { get; init; }

    [CommandOption("--bucket <ID>")]
    [Description("With --server: re-profile this bucket alone (e.g. decode-512); other buckets stay as they are.")]
    public string? Bucket { get; init; }

    [CommandOption("--wait")]
    [Description("With --server: follow the run until it finishes.")]
    public bool Wait { get; init; }

    public override ValidationResult Validate()
    {
        if (Server is not null)
        {
            if (Device is null || (Deployment is null) == (Spec is null))
            {
                return ValidationResult.Error("--server needs --device and one of --deployment or --spec");
            }

            return Endpoint is not null || Out is not null
                ? ValidationResult.Error("--server profiles through the server: --endpoint and --out belong to local profiling")
                : ValidationResult.Success();
        }

        if (Endpoint is null || Out is null)
        {
            return ValidationResult.Error("--endpoint and --out are required (or --server to have a LENS server profile)");
        }

        if (EndpointOptions.Check(Endpoint) is { } bad)
        {
            return bad;
        }

        if (Plan is null && !HasBuckets)
        {
            return ValidationResult.Error("give --plan, or the bucket options (--prefill-buckets/--decode-buckets or --preset) to plan here");
        }

        if (Fit is not null && !HasBuckets)
        {
            return ValidationResult.Error("--fit needs the bucket options (--prefill-buckets/--decode-buckets or --preset)");
        }

        if (Repeats < 1 || Warmup < 0 || Retries < 0 || TimeoutSeconds < 1 || TokenIdMax < 2)
        {
            return ValidationResult.Error("--repeats and --timeout must be at least 1, --warmup and --retries at least 0, --token-id-max at least 2");
        }

        if (Retries >= MeasurementRetryPolicy.MaxAttemptsLimit)
        {
            return ValidationResult.Error($"--retries must be in 0..{MeasurementRetryPolicy.MaxAttemptsLimit - 1}; got {Retries}");
        }

        if (Plan is null && CheckPlanOptions(Repeats, MaxSpan) is { } problem)
        {
            return ValidationResult.Error(problem); // planning here
        }

        return HasBuckets ? base.Validate() : ValidationResult.Success();
    }
}

/// <summary>Profiles a live OpenAI-compatible server: warm-up, the plan's interleaved rows one at a time, resumable output.</summary>
public sealed class ProfileCommand : AsyncCommand<ProfileSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, ProfileSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Server is not null)
        {
            return await RemoteAsync(settings, cancellationToken);
        }

        var buckets = settings.HasBuckets ? settings.BuildBuckets() : null;
        IReadOnlyList<PlanRow> rows;
        var multiplier = 1;
        if (settings.Plan is not null)
        {
            using var reader = CliFiles.Open(settings.Plan, "--plan");
            rows = LensCsv.ReadPlan(reader, settings.Plan).Rows;
            multiplier = settings.Repeats;
        }
        else
        {
            rows = ProfilingPlanner.Create(buckets!, new PlanOptions(settings.Repeats, settings.MaxSpan, settings.Seed)).Rows;
        }

        // The runner's measurement loop holds the one retry budget (--retries); the backend makes one HTTP request per attempt.
        using var backend = EndpointOptions.CreateBackend(settings.Endpoint!, settings.Model, settings.ApiKeyEnv, settings.TokenIdMax,
            settings.TimeoutSeconds, retries: 0, settings.TextPrompt);

        var requests = rows.Sum(r => r.Batch) * multiplier;
        var groups = ProfileRunner.IsGrouped(rows) ? $" in {rows.Count * multiplier} groups released at once" : "";
        AnsiConsole.MarkupLineInterpolated($"Profiling {backend.Describe}: {requests} requests{groups} -> [bold]{settings.Out}[/]");
        var summary = await ProgressDisplay.RunAsync("profiling", async progress =>
        {
            var runner = new ProfileRunner(backend, new ProfileRunOptions
            {
                WarmupsPerBucket = settings.Warmup,
                RepeatMultiplier = multiplier,
                Retry = MeasurementRetryPolicy.WithRetries(settings.Retries),
                Progress = progress,
            });
            return await runner.RunAsync(rows, settings.Out!, cancellationToken);
        });

        AnsiConsole.WriteLine(summary.Describe());
        if (!summary.Complete)
        {
            throw new CliException($"{summary.Remaining} requests are not measured yet; run the same command again to finish");
        }

        if (settings.Fit is not null)
        {
            var statistic = RepeatStatistic.Parse(settings.Statistic);
            var measured = CliFiles.ReadMeasurements(settings.Out!, "--out");
            var model = BucketFitter.Fit(buckets!, measured.Rows, statistic);
            CliFiles.WriteAtomically(settings.Fit, w => w.Write(ModelJson.Serialize(model)));
            AnsiConsole.MarkupLineInterpolated($"Fitted {buckets} and wrote [bold]{settings.Fit}[/].");
        }

        return LensApp.Ok;
    }

    private static async Task<int> RemoteAsync(ProfileSettings settings, CancellationToken ct)
    {
        var client = Remote.Connect(settings.Server!, settings.ApiKeyEnv);
        var device = settings.Device!;
        var deployment = settings.Deployment;
        if (settings.Spec is not null)
        {
            DeploymentSpec spec;
            using (var reader = CliFiles.Open(settings.Spec, "--spec"))
            {
                spec = JsonSerializer.Deserialize<DeploymentSpec>(await reader.ReadToEndAsync(ct), LensJson.Options)
                       ?? throw new CliException($"{settings.Spec}: empty deployment spec");
            }

            var created = await client.CreateDeploymentAsync(device, spec, ct);
            deployment = created.Id;
            AnsiConsole.MarkupLineInterpolated($"Deployment [bold]{deployment}[/] on {device}: {string.Join(", ", created.Buckets)}");
        }

        var progress = await client.StartProfileAsync(device, deployment!, settings.Bucket, ct);
        AnsiConsole.MarkupLineInterpolated($"Profiling {deployment}{(settings.Bucket is null ? "" : $" ({settings.Bucket} alone)")}: run {progress.RunId}, {progress.Done}/{progress.Total}");
        if (settings.Wait)
        {
            progress = await client.WaitForProfileAsync(device, deployment!, TimeSpan.FromSeconds(1), ct);
            AnsiConsole.MarkupLineInterpolated($"{progress.State}: {progress.Done}/{progress.Total} measured, {progress.Retries} retries{(progress.LastError is null ? "" : $", last error: {progress.LastError}")}");
        }

        return LensApp.Ok;
    }
}
