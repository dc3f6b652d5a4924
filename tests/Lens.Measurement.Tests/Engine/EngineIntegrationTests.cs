using Lens.Core;
using Lens.Engine;

namespace Lens.Measurement.Tests.Engine;


/// <summary>One reference engine (the tiny profile) served on a loopback port, shared by the tests of a class.</summary>
public sealed class TinyEngineFixture : IAsyncLifetime
{
    private IAsyncDisposable? _server;

    public ReferenceEngine Engine { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Engine = ReferenceEngine.Create(EngineProfile.Load(Path.Combine(AppContext.BaseDirectory, "profiles", "tiny.json")));
        var server = await EngineServer.StartAsync(Engine, port: 0);
        _server = server;
        BaseAddress = server.BaseAddress;
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        Engine?.Dispose();
    }
}

/// <summary>
/// The profiler against the real reference engine served OpenAI-compatibly on loopback (tiny profile: P = 16,32,64;
/// D = 16,32,64,128; vocabulary 256). The engine's exact work counters show what it was asked to do.
/// </summary>
[Collection(nameof(EngineCollection))]
public sealed class EngineIntegrationTests(TinyEngineFixture fixture) : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lens-engine-profile-");

    public void Dispose() => _dir.Delete(recursive: true);

    private OpenAiCompletionsBackend Backend(string? model = "tiny", int retries = 1) => new(new OpenAiCompletionsOptions
    {
        BaseAddress = fixture.BaseAddress,
        Model = model,
        PromptTokenIdMin = 0,
        PromptTokenIdMax = 256,
        MaxRetries = retries,
        RetryBaseDelay = TimeSpan.FromMilliseconds(5),
        MaxRetryDelay = TimeSpan.FromMilliseconds(20),
        AttemptTimeout = TimeSpan.FromSeconds(30),
    });

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 11)]
    [InlineData(17, 15)]
    [InlineData(64, 64)]
    public async Task Measures_exact_token_counts_with_ttft_before_e2e(int input, int output)
    {
        using var backend = Backend();
        var before = fixture.Engine.Counters;

        var r = await backend.MeasureAsync(input, output);

        var after = fixture.Engine.Counters;
        Assert.Equal((input, output), (r.InputLength, r.OutputLength));
        Assert.NotNull(r.TtftMs);
        Assert.True(r.TtftMs > 0);
        Assert.True(r.TtftMs <= r.E2eMs, $"TTFT {r.TtftMs} ms after E2E {r.E2eMs} ms");
        Assert.InRange(r.TokenGapsMs!.Count, 0, output - 1);
        Assert.Equal(1, after.Requests - before.Requests);
        Assert.Equal(output - 1, after.DecodeSteps - before.DecodeSteps);
    }

    [Fact]
    public async Task Finds_the_served_model_by_itself()
    {
        using var backend = Backend(model: null);

        await backend.MeasureAsync(3, 2);

        Assert.Equal("tiny", backend.Model);
    }

    [Theory]
    [InlineData(65, 1)]   // prompt beyond the longest prefill bucket (64)
    [InlineData(60, 69)]  // I + O beyond the longest decode bucket (128)
    public async Task A_request_beyond_the_largest_bucket_fails_at_once_with_the_servers_message(int input, int output)
    {
        using var backend = Backend(retries: 3);
        var before = fixture.Engine.Counters.Requests;

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(input, output));

        Assert.False(e.IsTransient);
        Assert.Contains("400", e.Message, StringComparison.Ordinal);
        Assert.Contains("maximum context length is 128 tokens and its longest prompt 64 tokens", e.Message, StringComparison.Ordinal);
        Assert.Contains($"you requested {input} prompt and {output} completion tokens", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, fixture.Engine.Counters.Requests);
    }

    [Fact]
    public async Task A_text_prompt_counted_by_the_server_measures_the_same_lengths()
    {
        using var backend = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = fixture.BaseAddress,
            Model = "tiny",
            Prompt = PromptKind.Text,
            MaxRetries = 0,
        });

        var r = await backend.MeasureAsync(20, 6);

        Assert.Equal((20, 6), (r.InputLength, r.OutputLength));
        Assert.True(r.TtftMs <= r.E2eMs);
    }

    [Fact]
    public async Task A_profiling_run_against_a_server_that_is_down_stops_with_a_clear_error()
    {
        var port = FakeOpenAiServer.ClosedPort();
        using var backend = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = new Uri($"http://127.0.0.1:{port}/v1/"),
            Model = "tiny",
            MaxRetries = 2,
            RetryBaseDelay = TimeSpan.FromMilliseconds(5),
            MaxRetryDelay = TimeSpan.FromMilliseconds(10),
        });
        var plan = ProfilingPlanner.Create(fixture.Engine.Buckets);
        var output = Path.Combine(_dir.FullName, "down.csv");

        var e = await Assert.ThrowsAsync<ProfileRunException>(() =>
            new ProfileRunner(backend, new ProfileRunOptions { StopAfterConsecutiveFailures = 2 }).RunAsync(plan, output));

        Assert.Contains("stopped after 2 failed requests in a row", e.Message, StringComparison.Ordinal);
        Assert.Contains($"cannot reach http://127.0.0.1:{port}/v1/", e.Message, StringComparison.Ordinal);
        Assert.Contains("gave up after 3 attempts", e.Message, StringComparison.Ordinal);
        Assert.All(e.Summary.Failures, f => Assert.True(f.IsTransient));
        Assert.Equal(0, e.Summary.Measured);
        Assert.Equal([LensCsv.MeasurementHeader], File.ReadAllLines(output));
    }

    [Fact]
    public async Task Token_ids_outside_the_vocabulary_are_a_bad_request()
    {
        using var backend = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = fixture.BaseAddress,
            Model = "tiny",
            PromptTokenIdMin = 1000,
            PromptTokenIdMax = 2000,
            MaxRetries = 0,
        });

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(4, 2));

        Assert.False(e.IsTransient);
        Assert.Contains("400", e.Message, StringComparison.Ordinal);
        Assert.Contains("token ids must be within 0..255", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Profiles_the_whole_plan_and_a_rerun_resumes_where_a_cancelled_run_stopped()
    {
        var plan = ProfilingPlanner.Create(fixture.Engine.Buckets, new PlanOptions(Repeats: 2, Seed: 3));
        var output = Path.Combine(_dir.FullName, "tiny.csv");
        using var backend = Backend();
        using var cts = new CancellationTokenSource();
        var stopAfter = 5;
        var counting = new CountingBackend(backend, () =>
        {
            if (--stopAfter == 0)
            {
                cts.Cancel();
            }
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new ProfileRunner(counting, new ProfileRunOptions { WarmupsPerBucket = 0 }).RunAsync(plan, output, cts.Token));
        Assert.Equal(4, ReadBack(output).Count); // the fifth request was cancelled after it finished: not kept

        var before = fixture.Engine.Counters;
        var summary = await new ProfileRunner(backend, new ProfileRunOptions { WarmupsPerBucket = 1 }).RunAsync(plan, output);
        var after = fixture.Engine.Counters;

        Assert.True(summary.Complete, summary.Describe());
        Assert.Equal(4, summary.Skipped);
        Assert.Equal(plan.Rows.Count - 4, summary.Measured);
        var warmBuckets = plan.Rows.Skip(4).Select(r => r.Bucket).Distinct().Count();
        Assert.Equal(warmBuckets, summary.WarmUpRequests);
        Assert.Equal(plan.Rows.Count - 4 + warmBuckets, after.Requests - before.Requests);

        var rows = ReadBack(output);
        Assert.Equal(plan.Rows.Select(r => (r.Bucket, r.InputLength, r.OutputLength)), rows.Select(m => (m.Bucket!.Value, m.InputLength, m.OutputLength)));
        Assert.All(rows, m => Assert.True(m.TtftMs <= m.E2eMs));

        // Everything is measured: a third run sends nothing.
        var idle = fixture.Engine.Counters.Requests;
        var done = await new ProfileRunner(backend).RunAsync(plan, output);
        Assert.Equal(plan.Rows.Count, done.Skipped);
        Assert.Equal(idle, fixture.Engine.Counters.Requests);
    }

    private static List<MeasuredRequest> ReadBack(string path)
    {
        using var reader = new StreamReader(path);
        return [.. LensCsv.ReadMeasurements(reader, path).Rows];
    }

    /// <summary>Passes requests on and calls back after each answer (before the runner keeps it).</summary>
    private sealed class CountingBackend(IMeasurementBackend inner, Action afterEach) : IMeasurementBackend
    {
        public string Describe => inner.Describe;

        public async Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default)
        {
            var r = await inner.MeasureAsync(inputLength, outputLength, cancellationToken);
            afterEach();
            cancellationToken.ThrowIfCancellationRequested();
            return r;
        }
    }
}

[CollectionDefinition(nameof(EngineCollection))]
public sealed class EngineCollection : ICollectionFixture<TinyEngineFixture>;
