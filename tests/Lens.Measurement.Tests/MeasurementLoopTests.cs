using System.Threading.Channels;
using Lens.Core;
using Microsoft.Extensions.Time.Testing;

namespace Lens.Measurement.Tests;

/// <summary>
/// Issue 17, item 3: one measurement loop and one retry budget. Against a real loopback server that always fails transiently, a row
/// costs exactly the budget's attempts in HTTP requests, through the loop and through the CLI's runner (the service's worker path is
/// in Lens.Service.Tests, ProfileRetryBudgetTests); a backend that retries on its own is refused beside a retrying loop.
/// </summary>
public sealed class MeasurementLoopTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lens-loop-");

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>A server that answers every completions request 503 (transient): a device that never comes back.</summary>
    private static Task<FakeOpenAiServer> AlwaysDownAsync() =>
        FakeOpenAiServer.StartAsync((ctx, _) => FakeOpenAiServer.ErrorAsync(ctx, 503, "engine is restarting"));

    /// <summary>The backend as the CLI and the service build it for profiling: one HTTP request per call (MaxRetries left at 0).</summary>
    private static OpenAiCompletionsBackend Backend(Uri baseAddress) =>
        new(new OpenAiCompletionsOptions { BaseAddress = baseAddress, Model = "fake-model" });

    private static MeasurementRetryPolicy NoWait(int attempts) =>
        new() { MaxAttempts = attempts, InitialBackoff = TimeSpan.Zero, MaxBackoff = TimeSpan.Zero };

    [Fact]
    public async Task A_row_against_a_server_that_always_fails_transiently_costs_exactly_the_attempts_of_the_budget()
    {
        await using var server = await AlwaysDownAsync();
        using var backend = Backend(server.BaseAddress);
        var retries = new List<MeasurementRetry>();
        var loop = new MeasurementLoop(backend, NoWait(4), retries.Add);

        var row = await loop.MeasureAsync(8, 4, batch: 1);

        Assert.False(row.Succeeded);
        Assert.True(row.IsTransient);
        Assert.Equal(4, row.Attempts);
        Assert.Equal(4, server.CompletionRequests);
        Assert.Equal(0, server.ModelRequests); // the model is named: no listing
        Assert.Equal(4, loop.MaxRequestsPerRow(1));
        Assert.Equal([1, 2, 3], retries.Select(r => r.FailedAttempt));
        Assert.Contains("503", row.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain("gave up after", row.Reason, StringComparison.Ordinal); // the backend did not retry
        Assert.Equal(" (gave up after 4 attempts)", row.AttemptsNote);
    }

    [Fact]
    public async Task Through_the_CLIs_runner_a_row_costs_retries_plus_one_requests_and_the_failure_says_so()
    {
        // What 'lens profile --retries 2 --warmup 0' builds: the loop's budget from --retries, the backend without retries.
        await using var server = await AlwaysDownAsync();
        using var backend = Backend(server.BaseAddress);
        var plan = ProfilingPlanner.Create(new BucketSet([8], [16]));
        var runner = new ProfileRunner(backend, new ProfileRunOptions
        {
            WarmupsPerBucket = 0,
            Retry = MeasurementRetryPolicy.WithRetries(2) with { InitialBackoff = TimeSpan.Zero, MaxBackoff = TimeSpan.Zero },
            StopAfterConsecutiveFailures = 2,
        });

        var e = await Assert.ThrowsAsync<ProfileRunException>(() => runner.RunAsync(plan, Path.Combine(_dir.FullName, "m.csv")));

        Assert.Equal(2, e.Summary.Failures.Count); // two rows, then the run stopped
        Assert.Equal(2 * 3, server.CompletionRequests);
        Assert.All(e.Summary.Failures, f => Assert.True(f.IsTransient));
        Assert.All(e.Summary.Failures, f => Assert.EndsWith("(gave up after 3 attempts)", f.Reason, StringComparison.Ordinal));
        Assert.Contains("stopped after 2 failed requests in a row", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_waits_between_attempts_run_on_the_policys_clock_and_double()
    {
        var time = new FakeTimeProvider();
        var arrivals = Channel.CreateUnbounded<int>();
        await using var server = await FakeOpenAiServer.StartAsync((ctx, call) =>
        {
            arrivals.Writer.TryWrite(call.Number);
            return FakeOpenAiServer.ErrorAsync(ctx, 503, "busy");
        });
        using var backend = Backend(server.BaseAddress);
        var policy = new MeasurementRetryPolicy
        {
            MaxAttempts = 3, InitialBackoff = TimeSpan.FromSeconds(1), MaxBackoff = TimeSpan.FromSeconds(30), TimeProvider = time,
        };
        var delays = Channel.CreateUnbounded<TimeSpan>();
        var loop = new MeasurementLoop(backend, policy, r => delays.Writer.TryWrite(r.Delay));

        var measuring = loop.MeasureAsync(4, 4, batch: 1);
        foreach (var wait in new[] { TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2) })
        {
            await arrivals.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(wait, await delays.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.False(arrivals.Reader.TryRead(out _)); // no next attempt before the clock moves
            time.Advance(wait);
        }

        var row = await measuring.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(3, row.Attempts);
        Assert.Equal(3, server.CompletionRequests);
    }

    [Fact]
    public async Task A_transient_fault_is_retried_and_only_the_successful_attempt_is_kept()
    {
        await using var server = await FakeOpenAiServer.StartAsync((ctx, call) => call.Number <= 2
            ? FakeOpenAiServer.ErrorAsync(ctx, 502, "bad gateway")
            : FakeOpenAiServer.StreamAsync(ctx, call.PromptTokens, call.MaxTokens));
        using var backend = Backend(server.BaseAddress);

        var row = await new MeasurementLoop(backend, NoWait(5)).MeasureAsync(6, 3, batch: 1);

        Assert.True(row.Succeeded);
        Assert.Equal(3, row.Attempts);
        Assert.Equal(2, row.Retries);
        Assert.Equal((6, 3), (row.Results![0].InputLength, row.Results[0].OutputLength));
        Assert.Equal(3, server.CompletionRequests);
    }

    [Fact]
    public async Task A_fault_that_is_not_transient_costs_one_request()
    {
        await using var server = await FakeOpenAiServer.StartAsync((ctx, _) => FakeOpenAiServer.ErrorAsync(ctx, 400, "prompt too long"));
        using var backend = Backend(server.BaseAddress);

        var row = await new MeasurementLoop(backend, NoWait(5)).MeasureAsync(6, 3, batch: 1);

        Assert.False(row.IsTransient);
        Assert.Equal(1, row.Attempts);
        Assert.Equal("", row.AttemptsNote);
        Assert.Equal(1, server.CompletionRequests);
    }

    [Fact]
    public async Task A_group_is_retried_whole_and_each_attempt_sends_at_most_its_b_requests()
    {
        await using var server = await AlwaysDownAsync();
        using var backend = Backend(server.BaseAddress);
        var loop = new MeasurementLoop(backend, NoWait(3));

        var row = await loop.MeasureAsync(8, 4, batch: 4);

        Assert.False(row.Succeeded);
        Assert.Equal(3, row.Attempts);
        Assert.Equal(12, loop.MaxRequestsPerRow(4));
        // The first failure of a group cancels the members not sent yet: at least one request per attempt, at most b.
        Assert.InRange(server.CompletionRequests, 3, 12);
    }

    [Fact]
    public void Retries_in_the_backend_and_in_the_loop_would_stack_and_are_refused()
    {
        using var retrying = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = new Uri("http://127.0.0.1:9/v1/"), Model = "m", MaxRetries = 3,
        });

        var e = Assert.Throws<ArgumentException>(() => new MeasurementLoop(retrying, NoWait(5)));
        Assert.Contains("retries would stack", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new ProfileRunner(retrying, new ProfileRunOptions { Retry = MeasurementRetryPolicy.WithRetries(1) }));

        // One attempt in the loop leaves the backend's retries as the budget: 4 requests a row.
        Assert.Equal(4, new MeasurementLoop(retrying, MeasurementRetryPolicy.Once).MaxRequestsPerRow(1));
        Assert.Equal(0, new OpenAiCompletionsOptions { BaseAddress = new Uri("http://127.0.0.1:9/v1/") }.MaxRetries);
    }

    [Fact]
    public void Backoff_doubles_from_the_initial_wait_up_to_the_cap()
    {
        var policy = new MeasurementRetryPolicy { InitialBackoff = TimeSpan.FromMilliseconds(200), MaxBackoff = TimeSpan.FromSeconds(1) };

        Assert.Equal([200, 400, 800, 1000, 1000], Enumerable.Range(1, 5).Select(n => policy.BackoffAfter(n).TotalMilliseconds));
        Assert.Equal(TimeSpan.Zero, (policy with { InitialBackoff = TimeSpan.Zero }).BackoffAfter(int.MaxValue));
        Assert.Equal(4, MeasurementRetryPolicy.WithRetries(3).MaxAttempts);
        Assert.Throws<ArgumentException>(() => new MeasurementRetryPolicy { MaxAttempts = 0 }.Validate());
        Assert.Throws<ArgumentException>(() => new MeasurementRetryPolicy { MaxAttempts = MeasurementRetryPolicy.MaxAttemptsLimit + 1 }.Validate());
        Assert.Throws<ArgumentException>(() => (policy with { MaxBackoff = TimeSpan.FromMilliseconds(100) }).Validate());
    }

    [Theory]
    [InlineData(8, 4, 2, 10.0, 5.0, "answered 1 requests for a group of 2")]
    [InlineData(8, 5, 1, 10.0, 5.0, "not the requested I = 8, O = 4")]
    [InlineData(8, 4, 1, double.PositiveInfinity, null, "E2E")]
    [InlineData(8, 4, 1, 86_400_001.0, null, "at most 86400000 ms")]
    [InlineData(8, 4, 1, 10.0, 11.0, "TTFT must be positive and at most E2E")]
    [InlineData(8, 4, 1, 10.0, 0.0, "TTFT must be positive and at most E2E")]
    public void The_one_check_refuses_answers_that_cannot_be_kept(int i, int o, int batch, double e2e, double? ttft, string reason)
    {
        var problem = MeasurementLoop.Check([new TimedRequest(i, o, e2e, ttft)], 8, 4, batch);

        Assert.NotNull(problem);
        Assert.Contains(reason, problem, StringComparison.Ordinal);
        Assert.Null(MeasurementLoop.Check([new TimedRequest(8, 4, 10, 5), new TimedRequest(8, 4, 12, null)], 8, 4, 2));
    }
}
