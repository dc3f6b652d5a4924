using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace Lens.Measurement.Tests;

/// <summary>The profiler against real loopback HTTP servers that misbehave on purpose.</summary>
public sealed class OpenAiCompletionsBackendTests
{
    private static OpenAiCompletionsOptions Options(Uri baseAddress, int retries = 2) => new()
    {
        BaseAddress = baseAddress,
        Model = "fake-model",
        MaxRetries = retries,
        RetryBaseDelay = TimeSpan.FromMilliseconds(5),
        MaxRetryDelay = TimeSpan.FromMilliseconds(20),
        AttemptTimeout = TimeSpan.FromSeconds(20),
    };

    [Fact]
    public async Task Measures_exact_counts_and_sends_an_exact_length_streamed_request()
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress));

        var r = await backend.MeasureAsync(12, 7);

        Assert.Equal(12, r.InputLength);
        Assert.Equal(7, r.OutputLength);
        Assert.NotNull(r.TtftMs);
        Assert.True(r.TtftMs > 0);
        Assert.True(r.TtftMs <= r.E2eMs);
        Assert.Equal(6, r.TokenGapsMs!.Count);
        Assert.All(r.TokenGapsMs, g => Assert.True(g >= 0));

        var body = Assert.Single(server.Calls).Body;
        Assert.Equal("fake-model", body.GetProperty("model").GetString());
        var prompt = body.GetProperty("prompt");
        Assert.Equal(JsonValueKind.Array, prompt.ValueKind);
        Assert.Equal(12, prompt.GetArrayLength());
        Assert.All(prompt.EnumerateArray(), id => Assert.InRange(id.GetInt32(), 100, 999));
        Assert.Equal(7, body.GetProperty("max_tokens").GetInt32());
        Assert.Equal(7, body.GetProperty("min_tokens").GetInt32());
        Assert.True(body.GetProperty("ignore_eos").GetBoolean());
        Assert.Equal(0, body.GetProperty("temperature").GetDouble());
        Assert.True(body.GetProperty("stream").GetBoolean());
        Assert.True(body.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
    }

    [Fact]
    public async Task Repeated_requests_send_different_prompts_so_no_prefix_cache_is_hit()
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress));

        await backend.MeasureAsync(16, 2);
        await backend.MeasureAsync(16, 2);

        var prompts = server.Calls.Select(c => string.Join(',', c.Body.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()))).ToArray();
        Assert.NotEqual(prompts[0], prompts[1]);
    }

    [Theory]
    [InlineData(-1, 6, "produced 6 output tokens, 7 were asked for")]
    [InlineData(11, -1, "counted 11 prompt tokens, the request had 12")]
    public async Task Wrong_usage_is_a_failed_measurement_not_retried(int usagePrompt, int usageCompletion, string expected)
    {
        await using var server = await FakeOpenAiServer.StartAsync((ctx, call) =>
            FakeOpenAiServer.StreamAsync(ctx, call.PromptTokens, call.MaxTokens, usagePromptTokens: usagePrompt, usageCompletionTokens: usageCompletion));
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress));

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(12, 7));

        Assert.False(e.IsTransient);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Equal(1, server.CompletionRequests);
    }

    [Fact]
    public async Task Missing_usage_is_a_failed_measurement()
    {
        await using var server = await FakeOpenAiServer.StartAsync((ctx, call) =>
            FakeOpenAiServer.StreamAsync(ctx, call.PromptTokens, call.MaxTokens, usage: false));
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress));

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(4, 3));

        Assert.False(e.IsTransient);
        Assert.Contains("no usage", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, server.CompletionRequests);
    }

    [Fact]
    public async Task A_bad_request_fails_at_once_with_the_servers_message()
    {
        await using var server = await FakeOpenAiServer.StartAsync((ctx, _) =>
            FakeOpenAiServer.ErrorAsync(ctx, 400, "This model's maximum context length is 64 tokens. However, you requested 80 tokens"));
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress));

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(60, 20));

        Assert.False(e.IsTransient);
        Assert.Contains("400", e.Message, StringComparison.Ordinal);
        Assert.Contains("maximum context length is 64 tokens", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, server.CompletionRequests);
    }

    [Fact]
    public async Task Server_errors_are_retried_and_only_the_successful_attempt_is_timed()
    {
        // The failed attempts are slow before their 503. The timed attempt starts after the client has read the second 503, so its
        // E2E cannot exceed the time from the server's writing that 503 to the end of the call (same process, same monotonic clock).
        // Timing the failed attempts or the backoff too would break that bound by at least the 300 ms delay.
        long secondErrorWritten = 0;
        await using var server = await FakeOpenAiServer.StartAsync(async (ctx, call) =>
        {
            if (call.Number <= 2)
            {
                await Task.Delay(300, ctx.RequestAborted);
                Interlocked.Exchange(ref secondErrorWritten, Stopwatch.GetTimestamp());
                await FakeOpenAiServer.ErrorAsync(ctx, 503, "engine is warming up");
                return;
            }

            await FakeOpenAiServer.StreamAsync(ctx, call.PromptTokens, call.MaxTokens);
        });
        var retries = new List<MeasurementRetry>();
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress, retries: 3) with { OnRetry = retries.Add });

        var r = await backend.MeasureAsync(5, 4);
        var end = Stopwatch.GetTimestamp();

        Assert.Equal(3, server.CompletionRequests);
        Assert.Equal([1, 2], retries.Select(x => x.FailedAttempt));
        Assert.All(retries, x => Assert.Contains("503", x.Reason, StringComparison.Ordinal));
        Assert.All(retries, x => Assert.Contains("engine is warming up", x.Reason, StringComparison.Ordinal));
        var bound = Stopwatch.GetElapsedTime(Interlocked.Read(ref secondErrorWritten), end).TotalMilliseconds;
        Assert.True(r.E2eMs <= bound, $"E2E {r.E2eMs} ms is longer than the last attempt can have taken ({bound} ms)");
    }

    [Fact]
    public async Task A_server_that_is_down_fails_transiently_after_the_retries()
    {
        var port = FakeOpenAiServer.ClosedPort();
        using var backend = new OpenAiCompletionsBackend(Options(new Uri($"http://127.0.0.1:{port}/v1/"), retries: 2));

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(4, 4));

        Assert.True(e.IsTransient);
        Assert.Contains($"cannot reach http://127.0.0.1:{port}/v1/", e.Message, StringComparison.Ordinal);
        Assert.Contains("gave up after 3 attempts", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_hangs_times_out_per_attempt()
    {
        // Fake time: an attempt times out only when the test moves the clock, after the server has seen that attempt's request,
        // so the count of requests cannot race the timeout (with a real 200 ms limit, a loaded machine timed out before sending).
        var time = new FakeTimeProvider();
        var arrivals = Channel.CreateUnbounded<int>();
        await using var server = await FakeOpenAiServer.StartAsync(async (ctx, call) =>
        {
            arrivals.Writer.TryWrite(call.Number);
            await Task.Delay(Timeout.InfiniteTimeSpan, ctx.RequestAborted);
        });
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress, retries: 1) with
        {
            AttemptTimeout = TimeSpan.FromMilliseconds(200),
            RetryBaseDelay = TimeSpan.Zero, // no retry delay to step the clock through
            TimeProvider = time,
        });

        var measuring = backend.MeasureAsync(4, 4);
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            Assert.Equal(attempt, await arrivals.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.False(measuring.IsCompleted, $"attempt {attempt} ended before its limit passed");
            time.Advance(TimeSpan.FromMilliseconds(200));
        }

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => measuring.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.True(e.IsTransient);
        Assert.Contains("within 0.2 s", e.Message, StringComparison.Ordinal);
        Assert.Contains("gave up after 2 attempts", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, server.CompletionRequests);
        Assert.False(arrivals.Reader.TryRead(out _));
    }

    [Fact]
    public async Task A_stream_cut_off_midway_is_retried()
    {
        await using var server = await FakeOpenAiServer.StartAsync(async (ctx, call) =>
        {
            if (call.Number == 1)
            {
                ctx.Response.ContentType = "text/event-stream";
                await FakeOpenAiServer.WriteEventAsync(ctx, """{"choices":[{"index":0,"text":"a","finish_reason":null}]}""");
                ctx.Abort();
                return;
            }

            await FakeOpenAiServer.StreamAsync(ctx, call.PromptTokens, call.MaxTokens);
        });
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress));

        var r = await backend.MeasureAsync(3, 5);

        Assert.Equal(5, r.OutputLength);
        Assert.Equal(2, server.CompletionRequests);
    }

    [Fact]
    public async Task An_error_inside_the_stream_is_a_failure_with_its_message()
    {
        await using var server = await FakeOpenAiServer.StartAsync(async (ctx, _) =>
        {
            ctx.Response.ContentType = "text/event-stream";
            await FakeOpenAiServer.WriteEventAsync(ctx, """{"error":{"message":"sequence group aborted","type":"BadRequestError","code":400}}""");
            await FakeOpenAiServer.WriteEventAsync(ctx, "[DONE]");
        });
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress));

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(3, 5));

        Assert.False(e.IsTransient);
        Assert.Contains("sequence group aborted", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_key_is_sent_but_never_appears_in_errors_or_descriptions()
    {
        const string key = "sk-test-7f3a9c1e55d04b2b";
        await using var server = await FakeOpenAiServer.StartAsync((ctx, call) =>
            call.Number == 1
                ? FakeOpenAiServer.ErrorAsync(ctx, 401, $"invalid key in header '{call.Authorization}'")
                : FakeOpenAiServer.ErrorAsync(ctx, 503, $"overloaded; your header was {call.Authorization}"));
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress) with { ApiKey = key });

        var unauthorized = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(3, 3));
        var overloaded = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(3, 3));

        Assert.Equal($"Bearer {key}", server.Calls[0].Authorization);
        Assert.False(unauthorized.IsTransient);
        Assert.True(overloaded.IsTransient);
        foreach (var e in new[] { unauthorized, overloaded })
        {
            Assert.Contains("[redacted]", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(key, e.ToString(), StringComparison.Ordinal);
            for (Exception? inner = e; inner is not null; inner = inner.InnerException)
            {
                Assert.DoesNotContain(key, inner.Message, StringComparison.Ordinal);
            }
        }

        Assert.DoesNotContain(key, backend.Describe, StringComparison.Ordinal);
        var options = (Options(server.BaseAddress) with { ApiKey = key }).ToString();
        Assert.DoesNotContain(key, options, StringComparison.Ordinal);
        Assert.Contains("ApiKey = [redacted]", options, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_key_can_come_from_an_environment_variable()
    {
        var name = $"LENS_TEST_KEY_{Guid.NewGuid():N}";
        Environment.SetEnvironmentVariable(name, "env-secret-123");
        try
        {
            await using var server = await FakeOpenAiServer.StartAsync();
            using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress) with { ApiKeyEnvironmentVariable = name });

            await backend.MeasureAsync(2, 2);

            Assert.Equal("Bearer env-secret-123", server.Calls[0].Authorization);
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, null);
        }

        var e = Assert.Throws<ArgumentException>(() =>
            new OpenAiCompletionsBackend(Options(new Uri("http://127.0.0.1:9/v1/")) with { ApiKeyEnvironmentVariable = name }));
        Assert.Contains($"{name}, named to hold the API key, is not set", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_model_name_the_only_served_model_is_used()
    {
        await using var server = await FakeOpenAiServer.StartAsync(models: ["served-one"]);
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress) with { Model = null });

        await backend.MeasureAsync(2, 2);
        await backend.MeasureAsync(2, 2);

        Assert.Equal("served-one", backend.Model);
        Assert.Equal(1, server.ModelRequests);
        Assert.All(server.Calls, c => Assert.Equal("served-one", c.Body.GetProperty("model").GetString()));
    }

    [Fact]
    public async Task Several_served_models_and_none_named_is_an_error_that_lists_them()
    {
        await using var server = await FakeOpenAiServer.StartAsync(models: ["a-model", "b-model"]);
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress) with { Model = null });

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(2, 2));

        Assert.False(e.IsTransient);
        Assert.Contains("a-model, b-model", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, server.CompletionRequests);
    }

    [Fact]
    public async Task A_text_prompt_is_checked_against_the_servers_count()
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        using var good = new OpenAiCompletionsBackend(Options(server.BaseAddress) with { Prompt = PromptKind.Text });
        using var bad = new OpenAiCompletionsBackend(Options(server.BaseAddress) with
        {
            Prompt = PromptKind.Text,
            TextPrompt = n => string.Join(' ', Enumerable.Repeat("w", n + 1)),
        });

        var r = await good.MeasureAsync(9, 3);
        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => bad.MeasureAsync(9, 3));

        Assert.Equal(9, r.InputLength);
        Assert.Equal(JsonValueKind.String, server.Calls[0].Body.GetProperty("prompt").ValueKind);
        Assert.False(e.IsTransient);
        Assert.Contains("counted 10 prompt tokens, the request had 9; the text prompt", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_ignores_stream_gives_e2e_without_ttft()
    {
        await using var server = await FakeOpenAiServer.StartAsync((ctx, call) => ctx.Response.WriteAsJsonAsync(new
        {
            choices = new[] { new { index = 0, text = "abc", finish_reason = "length" } },
            usage = new { prompt_tokens = call.PromptTokens, completion_tokens = call.MaxTokens, total_tokens = call.PromptTokens + call.MaxTokens },
        }));
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress));

        var r = await backend.MeasureAsync(6, 4);

        Assert.Null(r.TtftMs);
        Assert.True(r.E2eMs > 0);
    }

    [Fact]
    public async Task Cancelling_stops_a_request_in_flight_without_a_failure()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await FakeOpenAiServer.StartAsync(async (ctx, _) =>
        {
            started.TrySetResult();
            await Task.Delay(TimeSpan.FromSeconds(30), ctx.RequestAborted);
        });
        using var backend = new OpenAiCompletionsBackend(Options(server.BaseAddress));
        using var cts = new CancellationTokenSource();

        var measuring = backend.MeasureAsync(3, 3, cts.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => measuring);
        Assert.Equal(1, server.CompletionRequests);
    }

    [Fact]
    public void Bad_options_are_refused_with_the_reason()
    {
        var e = Assert.Throws<ArgumentException>(() => new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = new Uri("ftp://example.invalid/v1/"),
        }));
        Assert.Contains("http(s)", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = new Uri("http://127.0.0.1:1/v1/"),
            MaxRetries = -1,
        }));
    }

    [Fact]
    public void The_base_address_is_shown_without_user_information()
    {
        using var backend = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = new Uri("http://user:pw-secret@127.0.0.1:9/v1"),
            Model = "m",
        });

        Assert.DoesNotContain("pw-secret", backend.Describe, StringComparison.Ordinal);
        Assert.Contains("http://127.0.0.1:9/v1/", backend.Describe, StringComparison.Ordinal);
    }
}
