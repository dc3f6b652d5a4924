using Lens.Core;
using Lens.Engine;
using Lens.Measurement;
using Spectre.Console;

namespace Lens.Cli;

/// <summary>
/// The built-in reference engine, started for a command: by default behind its OpenAI-compatible server on loopback and timed
/// through the same HTTP profiler a real NPU server gets; with <c>direct</c>, timed in-process.
/// </summary>
internal sealed class EngineHost : IAsyncDisposable
{
    public const string DefaultProfile = "nxdi-small";

    private readonly ReferenceEngine _engine;
    private readonly EngineServer? _server;
    private readonly OpenAiCompletionsBackend? _http;

    private EngineHost(ReferenceEngine engine, EngineServer? server, OpenAiCompletionsBackend? http, IMeasurementBackend backend)
    {
        _engine = engine;
        _server = server;
        _http = http;
        Backend = backend;
    }

    public IMeasurementBackend Backend { get; }

    public BucketSet Buckets => _engine.Buckets;

    /// <summary>The buckets a batched profile, plan, fit and simulation of the engine use (<see cref="ReferenceEngine.ServingBuckets"/>).</summary>
    public BucketSet ServingBuckets => _engine.ServingBuckets;

    /// <summary>The engine's scheduling policy (its profile's; prefill-first padded when the profile names none).</summary>
    public SchedulingPolicy Policy => _engine.Policy;

    /// <summary>The OpenAI-compatible backend of the engine's server (null when timed in-process).</summary>
    public OpenAiCompletionsBackend? Http => _http;

    /// <summary>The engine itself (its slowdown hook is a test's way to change the device under load).</summary>
    public ReferenceEngine Engine => _engine;

    /// <summary>The model id the engine serves (its profile's name).</summary>
    public string ModelName => _engine.Profile.Name;

    public string Describe => $"reference engine '{_engine.Profile.Name}' ({Backend.Describe})";

    /// <summary>Loads a shipped profile by name, or a profile file by path.</summary>
    public static EngineProfile LoadProfile(string nameOrPath) =>
        File.Exists(nameOrPath) || nameOrPath.Contains('/', StringComparison.Ordinal) || nameOrPath.Contains('\\', StringComparison.Ordinal)
            ? EngineProfile.Load(nameOrPath)
            : EngineProfiles.Load(nameOrPath);

    public static async Task<EngineHost> StartAsync(string profile, bool direct, CancellationToken cancellationToken)
    {
        var engine = ReferenceEngine.Create(LoadProfile(profile));
        if (direct)
        {
            return new EngineHost(engine, null, null, new ReferenceEngineBackend(engine));
        }

        var server = await EngineServer.StartAsync(engine, 0, cancellationToken);
        var http = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = server.BaseAddress,
            Model = engine.Profile.Name,
            PromptTokenIdMin = 0,
            PromptTokenIdMax = engine.Profile.Vocab,
        });
        return new EngineHost(engine, server, http, http);
    }

    /// <summary>
    /// One round of <paramref name="rows"/> against the engine's server, appended to (resuming) <paramref name="path"/>, with a
    /// progress line titled <paramref name="title"/>: each row's repeats times <paramref name="repeatMultiplier"/>, one warm-up per
    /// bucket when <paramref name="warmUp"/>. Throws a <see cref="CliException"/> when requests are left unmeasured.
    /// </summary>
    public async Task ProfileRoundAsync(IReadOnlyList<PlanRow> rows, string path, int repeatMultiplier, bool warmUp, string title, IAnsiConsole ui,
        CancellationToken ct)
    {
        var http = _http ?? throw new InvalidOperationException("the engine is timed in-process: there is no server to profile");
        var summary = await ProgressDisplay.RunAsync(title, progress =>
            new ProfileRunner(http, new ProfileRunOptions
            {
                WarmupsPerBucket = warmUp ? 1 : 0,
                RepeatMultiplier = repeatMultiplier,
                Retry = MeasurementRetryPolicy.WithRetries(3), // the engine's HTTP backend makes one request per attempt
                Progress = progress,
            }).RunAsync(rows, path, ct), ui);
        if (!summary.Complete)
        {
            throw new CliException($"{title}: stopped with {summary.Remaining} requests left: {summary.Describe()}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        _http?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _engine.Dispose();
    }
}
