using System.Net;
using System.Text;
using System.Text.Json;
using Lens.Measurement;

namespace Lens.Engine.Tests;

/// <summary>One tiny engine served on loopback for the whole class; stopped at the end.</summary>
public sealed class EngineServerFixture() : ServedEngine(TestProfiles.Tiny);

/// <summary>One tiny-batch engine (max_num_seqs 4) served on loopback for the whole class.</summary>
public sealed class BatchedEngineServerFixture() : ServedEngine(TestProfiles.TinyBatch);

/// <summary>An engine of <paramref name="profile"/>, not warmed up, served on loopback; stopped at the end.</summary>
public abstract class ServedEngine(EngineProfile profile) : IAsyncLifetime
{
    public ReferenceEngine Engine { get; } = ReferenceEngine.Create(profile, warmup: false);

    public EngineServer Server { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await EngineServer.StartAsync(Engine, 0);
        Http = new HttpClient { BaseAddress = Server.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Engine.Dispose();
    }
}

public sealed class EngineServerTests(EngineServerFixture fixture) : IClassFixture<EngineServerFixture>
{
    private HttpClient Http => fixture.Http;

    [Fact]
    public void Binds_loopback_with_a_v1_base()
    {
        Assert.Equal("127.0.0.1", fixture.Server.BaseAddress.Host);
        Assert.EndsWith("/v1/", fixture.Server.BaseAddress.AbsolutePath, StringComparison.Ordinal);
        Assert.True(fixture.Server.BaseAddress.Port > 0);
    }

    [Fact]
    public async Task Health_answers()
    {
        using var response = await Http.GetAsync(new Uri(fixture.Server.RootAddress, "health"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Models_lists_the_profile_name()
    {
        using var doc = JsonDocument.Parse(await Http.GetStringAsync("models"));
        var data = doc.RootElement.GetProperty("data");
        Assert.Equal(1, data.GetArrayLength());
        Assert.Equal("tiny", data[0].GetProperty("id").GetString());
        Assert.Equal(128, data[0].GetProperty("max_model_len").GetInt32());
        Assert.Equal(1, data[0].GetProperty("max_num_seqs").GetInt32());
    }

    [Fact]
    public async Task Non_streamed_completion_of_token_ids_has_exact_usage_and_the_engines_tokens()
    {
        using var response = await Http.PostAsync("completions",
            Json("""{"model":"tiny","prompt":[1,2,3],"max_tokens":7,"temperature":0}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = doc.RootElement;
        Assert.Equal("text_completion", root.GetProperty("object").GetString());
        var text = root.GetProperty("choices")[0].GetProperty("text").GetString()!;
        Assert.Equal("length", root.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        AssertUsage(root, 3, 7);
        var expected = await fixture.Engine.GenerateAsync([1, 2, 3], 7);
        Assert.Equal(expected.Tokens, EngineTokenizer.Tokenize(text, 256));
        Assert.Equal(string.Concat(expected.Tokens.Select(EngineTokenizer.TokenText)), text);
    }

    [Fact]
    public async Task Text_prompts_are_one_token_per_word()
    {
        using var response = await Http.PostAsync("completions",
            Json("""{"model":"tiny","prompt":" hi hi  there\nfriend","max_tokens":2}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        AssertUsage(doc.RootElement, 4, 2);
        var ids = EngineTokenizer.Tokenize(" hi hi  there\nfriend", 256);
        Assert.Equal(4, ids.Length);
        Assert.Equal(ids[0], ids[1]);
        Assert.Equal([5, 17], EngineTokenizer.Tokenize("t5 t17", 256));
        Assert.NotEqual(5, EngineTokenizer.Tokenize("t05", 256)[0] == 5 ? 5 : -1);
    }

    [Theory]
    [InlineData(1, 1, true)]
    [InlineData(5, 30, true)]
    [InlineData(64, 64, true)]
    [InlineData(20, 12, false)]
    public async Task Streamed_completion_sends_one_chunk_per_token_then_usage_then_done(
        int inputLength, int outputLength, bool includeUsage)
    {
        var prompt = string.Join(',', fixture.Engine.SyntheticPrompt(inputLength));
        var usageFlag = includeUsage ? "true" : "false";
        var body = $$$"""
            {"model":"tiny","prompt":[{{{prompt}}}],"max_tokens":{{{outputLength}}},"min_tokens":{{{outputLength}}},"ignore_eos":true,
             "temperature":0,"stream":true,"stream_options":{"include_usage":{{{usageFlag}}}}}
            """;
        using var request = new HttpRequestMessage(HttpMethod.Post, "completions") { Content = Json(body) };
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = await ReadEventsAsync(response);

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e)).ToList();
        var tokenChunks = chunks.Where(c => c.RootElement.GetProperty("choices").GetArrayLength() > 0).ToList();
        Assert.Equal(outputLength, tokenChunks.Count);
        var texts = tokenChunks.Select(c => c.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!).ToList();
        Assert.All(texts, t => Assert.False(string.IsNullOrEmpty(t)));
        Assert.Equal("length", tokenChunks[^1].RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.All(tokenChunks.SkipLast(1),
            c => Assert.Equal(JsonValueKind.Null, c.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        var expected = await fixture.Engine.GenerateAsync(inputLength, outputLength);
        Assert.Equal(expected.Tokens, EngineTokenizer.Tokenize(string.Concat(texts), 256));

        var usage = chunks.Where(c => c.RootElement.TryGetProperty("usage", out _)).ToList();
        if (includeUsage)
        {
            Assert.Single(usage);
            Assert.Same(usage[0], chunks[^1]);
            AssertUsage(usage[0].RootElement, inputLength, outputLength);
        }
        else
        {
            Assert.Empty(usage);
        }

        chunks.ForEach(c => c.Dispose());
    }

    [Theory]
    [InlineData(PromptKind.TokenIds)]
    [InlineData(PromptKind.Text)]
    public async Task The_openai_profiler_measures_against_the_server(PromptKind prompt)
    {
        using var backend = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = fixture.Server.BaseAddress,
            Prompt = prompt,
            PromptTokenIdMax = 256, // tiny's vocabulary
        });
        var timed = await backend.MeasureAsync(20, 30);
        Assert.Equal(20, timed.InputLength);
        Assert.Equal(30, timed.OutputLength);
        Assert.NotNull(timed.TtftMs);
        Assert.InRange(timed.TtftMs!.Value, 0, timed.E2eMs);
        Assert.Equal(29, timed.TokenGapsMs!.Count);
        var refused = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(64, 65));
        Assert.False(refused.IsTransient);
    }

    [Fact]
    public async Task Concurrent_requests_queue_and_all_complete()
    {
        var tasks = Enumerable.Range(1, 4).Select(async i =>
        {
            var body = $$$"""
                {"model":"tiny","prompt":[{{{i}}}],"max_tokens":{{{10 * i}}},"stream":true,"stream_options":{"include_usage":true}}
                """;
            using var response = await Http.PostAsync("completions", Json(body));
            var events = await ReadEventsAsync(response);
            return (i, events);
        });
        foreach (var (i, events) in await Task.WhenAll(tasks))
        {
            Assert.Equal(10 * i, events.Count - 2); // token chunks, usage, [DONE]
        }
    }

    public static TheoryData<string, string?> BadRequests => new()
    {
        { "{", null },
        { "[1,2]", null },
        { """{"prompt":[1],"max_tokens":1}""", "model" },
        { """{"model":7,"prompt":[1],"max_tokens":1}""", "model" },
        { """{"model":"gpt-4","prompt":[1],"max_tokens":1}""", "model" },
        { """{"model":"tiny","max_tokens":1}""", "prompt" },
        { """{"model":"tiny","prompt":42,"max_tokens":1}""", "prompt" },
        { """{"model":"tiny","prompt":[1,-1],"max_tokens":1}""", "prompt" },
        { """{"model":"tiny","prompt":[1,256],"max_tokens":1}""", "prompt" },
        { """{"model":"tiny","prompt":[1,2.5],"max_tokens":1}""", "prompt" },
        { """{"model":"tiny","prompt":["a b","c"],"max_tokens":1}""", "prompt" },
        { """{"model":"tiny","prompt":"","max_tokens":1}""", "prompt" },
        { """{"model":"tiny","prompt":[],"max_tokens":1}""", "prompt" },
        { """{"model":"tiny","prompt":[1],"max_tokens":0}""", "max_tokens" },
        { """{"model":"tiny","prompt":[1],"max_tokens":"ten"}""", "max_tokens" },
        { """{"model":"tiny","prompt":[1],"max_tokens":3,"min_tokens":4}""", "min_tokens" },
        { """{"model":"tiny","prompt":[1],"max_tokens":3,"ignore_eos":"yes"}""", "ignore_eos" },
        { """{"model":"tiny","prompt":[1],"max_tokens":3,"temperature":7}""", "temperature" },
        { """{"model":"tiny","prompt":[1],"max_tokens":3,"stream":1}""", "stream" },
        {
            """{"model":"tiny","prompt":[1],"max_tokens":3,"stream":true,"stream_options":{"include_usage":"x"}}""",
            "stream_options.include_usage"
        },
        { """{"model":"tiny","prompt":[1],"max_tokens":128}""", "max_tokens" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_requests_get_openai_style_400s(string body, string? param)
    {
        using var response = await Http.PostAsync("completions", Json(body));
        await AssertError(response, param);
    }

    [Fact]
    public async Task Prompts_beyond_the_longest_prefill_bucket_are_refused()
    {
        var prompt = string.Join(',', Enumerable.Repeat(1, 65));
        using var response = await Http.PostAsync("completions",
            Json($$"""{"model":"tiny","prompt":[{{prompt}}],"max_tokens":1,"stream":true}"""));
        var message = await AssertError(response, "prompt");
        Assert.Contains("65", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sequences_beyond_the_longest_decode_bucket_are_refused_and_the_longest_is_served()
    {
        var prompt = string.Join(' ', Enumerable.Repeat("w", 64));
        using (var tooLong = await Http.PostAsync("completions", Json($$"""{"model":"tiny","prompt":"{{prompt}}","max_tokens":65}""")))
        {
            var message = await AssertError(tooLong, "max_tokens");
            Assert.Contains("128", message, StringComparison.Ordinal);
        }

        using var longest = await Http.PostAsync("completions", Json($$"""{"model":"tiny","prompt":"{{prompt}}","max_tokens":64}"""));
        Assert.Equal(HttpStatusCode.OK, longest.StatusCode);
        using var doc = JsonDocument.Parse(await longest.Content.ReadAsStringAsync());
        AssertUsage(doc.RootElement, 64, 64);
    }

    [Fact]
    public async Task Unknown_routes_are_404_in_openai_style()
    {
        using var response = await Http.GetAsync("nothing-here");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.True(doc.RootElement.TryGetProperty("error", out _));
    }

    [Fact]
    public async Task A_stopped_server_no_longer_listens()
    {
        using var engine = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);
        var server = await EngineServer.StartAsync(engine);
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("models")).StatusCode);
        await server.DisposeAsync();
        await server.DisposeAsync(); // idempotent
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("models"));
    }

    internal static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static void AssertUsage(JsonElement root, int prompt, int completion)
    {
        var usage = root.GetProperty("usage");
        Assert.Equal(prompt, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(completion, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(prompt + completion, usage.GetProperty("total_tokens").GetInt32());
    }

    private static async Task<string> AssertError(HttpResponseMessage response, string? param)
    {
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = doc.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("code").ValueKind);
        if (param is null)
        {
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        }
        else
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }

        var message = error.GetProperty("message").GetString()!;
        Assert.False(string.IsNullOrWhiteSpace(message));
        return message;
    }

    internal static async Task<List<string>> ReadEventsAsync(HttpResponseMessage response)
    {
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line["data: ".Length..]);
            }
        }

        return events;
    }
}

/// <summary>The batching engine behind the server: concurrent requests share decode steps, each gets its own tokens.</summary>
public sealed class BatchedServerTests(BatchedEngineServerFixture fixture) : IClassFixture<BatchedEngineServerFixture>
{
    private readonly ReferenceEngine _engine = fixture.Engine;
    private readonly HttpClient _http = fixture.Http;

    [Fact]
    public async Task Models_reports_max_num_seqs()
    {
        using var doc = JsonDocument.Parse(await _http.GetStringAsync("models"));
        Assert.Equal("tiny-batch", doc.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Equal(4, doc.RootElement.GetProperty("data")[0].GetProperty("max_num_seqs").GetInt32());
    }

    [Fact]
    public async Task Concurrent_requests_share_decode_steps_and_each_stream_gets_its_own_tokens()
    {
        // Three streamed requests and one plain one reach the paused scheduler over loopback HTTP, then run as one batch of 4.
        int[][] prompts = [[1, 2, 3], [.. Enumerable.Range(40, 20)], [9], [.. Enumerable.Range(0, 33)]];
        int[] outputs = [20, 30, 40, 12];
        var since = _engine.Counters.DecodeSteps;
        Task<HttpResponseMessage>[] sent;
        using (_engine.Pause())
        {
            sent = [.. Enumerable.Range(0, 4).Select(i => _http.SendAsync(
                new HttpRequestMessage(HttpMethod.Post, "completions")
                {
                    Content = EngineServerTests.Json(
                        $$"""{"model":"tiny-batch","prompt":[{{string.Join(',', prompts[i])}}],"max_tokens":{{outputs[i]}},"stream":{{(i < 3 ? "true" : "false")}}}"""),
                }, HttpCompletionOption.ResponseHeadersRead))];
            for (var spin = 0; spin < 3000 && _engine.WaitingRequests < 4; spin++)
            {
                await Task.Delay(10);
            }

            Assert.Equal(4, _engine.WaitingRequests);
        }

        var responses = await Task.WhenAll(sent);
        var texts = await Task.WhenAll(responses.Select(async (response, i) =>
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            if (i == 3)
            {
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                return doc.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
            }

            var events = await EngineServerTests.ReadEventsAsync(response);
            Assert.Equal("[DONE]", events[^1]);
            Assert.Equal(outputs[i], events.Count - 1);
            return string.Concat(events[..^1].Select(e =>
            {
                using var doc = JsonDocument.Parse(e);
                return doc.RootElement.GetProperty("choices")[0].GetProperty("text").GetString();
            }));
        }));
        foreach (var response in responses)
        {
            response.Dispose();
        }

        using var alone = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);
        for (var i = 0; i < prompts.Length; i++)
        {
            Assert.Equal((await alone.GenerateAsync(prompts[i], outputs[i])).Tokens, EngineTokenizer.Tokenize(texts[i], 256));
        }

        var steps = _engine.StepsSince(since);
        Assert.Equal(39, steps.Count); // the longest request's decode steps: every step served all requests still running
        Assert.Equal([4, 4, 2, 1], new[] { 10, 18, 19, 29 }.Select(s => steps[s].Batch)); // 3 rows still run at B = 4
        Assert.Equal([4, 3, 2, 1], new[] { 0, 11, 19, 29 }.Select(s => steps[s].Rows));
    }
}
