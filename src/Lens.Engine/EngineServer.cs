using System.Buffers;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lens.Engine;

/// <summary>
/// An OpenAI-compatible HTTP server for a <see cref="ReferenceEngine"/>, on Kestrel, bound to 127.0.0.1 only:
/// <list type="bullet">
/// <item><c>GET /v1/models</c>: the profile name is the one model id, with <c>max_model_len</c> and <c>max_num_seqs</c>;</item>
/// <item><c>POST /v1/completions</c>: <c>model</c>, <c>prompt</c> (a string, tokenized by <see cref="EngineTokenizer"/>: one token per
/// whitespace-separated word; or a list of token ids), <c>max_tokens</c> (default 16; exactly that many tokens are generated: the
/// engine never stops early), <c>min_tokens</c>, <c>ignore_eos</c> and <c>temperature</c> (checked, then ignored: decoding is
/// greedy), <c>stream</c>, <c>stream_options.include_usage</c>. Streamed answers are server-sent events, one chunk per token,
/// flushed as soon as the token exists, then a usage chunk when asked, then <c>data: [DONE]</c>;</item>
/// <item><c>GET /health</c>.</item>
/// </list>
/// Bad requests get OpenAI-style 400s: <c>{"error":{"message","type":"invalid_request_error","param","code":null}}</c>.
/// Every request goes straight to the engine, concurrently: its scheduler batches up to <c>max_num_seqs</c> of them (one at a
/// time with batch buckets <c>[1]</c>) and the rest wait first come first served; each stream gets its tokens as they exist.
/// </summary>
public sealed class EngineServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _disposed;

    private EngineServer(WebApplication app, ReferenceEngine engine, Uri baseAddress)
    {
        _app = app;
        Engine = engine;
        BaseAddress = baseAddress;
    }

    /// <summary>The OpenAI base address, ending in <c>/v1/</c>, e.g. <c>http://127.0.0.1:8000/v1/</c>.</summary>
    public Uri BaseAddress { get; }

    /// <summary>The server's root, e.g. <c>http://127.0.0.1:8000/</c> (where <c>/health</c> is).</summary>
    public Uri RootAddress => new(BaseAddress, "../");

    public ReferenceEngine Engine { get; }

    /// <summary>Starts serving <paramref name="engine"/> on 127.0.0.1:<paramref name="port"/> (0 picks a free port).</summary>
    public static async Task<EngineServer> StartAsync(ReferenceEngine engine, int port = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ApplicationName = typeof(EngineServer).Assembly.GetName().Name,
        });
        // Nothing from the environment, command line or an appsettings.json in the working folder may add endpoints or logging:
        // the server binds 127.0.0.1 only, and stays quiet.
        builder.Configuration.Sources.Clear();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(IPAddress.Loopback, port);
        });

        var app = builder.Build();
        var api = new CompletionsApi(engine);
        app.MapGet("/health", (RequestDelegate)CompletionsApi.HealthAsync);
        app.MapGet("/v1/models", (RequestDelegate)api.ModelsAsync);
        app.MapPost("/v1/completions", (RequestDelegate)api.CompletionsAsync);
        app.MapFallback((RequestDelegate)CompletionsApi.NotFoundAsync);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("Kestrel reported no listening address");
        var bound = new Uri(address);
        return new EngineServer(app, engine, new Uri($"http://127.0.0.1:{bound.Port}/v1/"));
    }

    /// <summary>Stops listening (in-flight requests are given a few seconds) and releases the server; the engine is not disposed.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            await _app.StopAsync(cts.Token);
        }

        await _app.DisposeAsync();
    }

    /// <summary>The request handlers. Parsing is by hand (<see cref="JsonDocument"/>) so that every bad input gets a precise 400.</summary>
    private sealed class CompletionsApi
    {
        private readonly ReferenceEngine _engine;
        private readonly string[] _tokenText;
        private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        private long _requests;

        public CompletionsApi(ReferenceEngine engine)
        {
            _engine = engine;
            _tokenText = new string[engine.Profile.Vocab];
            for (var i = 0; i < _tokenText.Length; i++)
            {
                _tokenText[i] = EngineTokenizer.TokenText(i);
            }
        }

        public static Task HealthAsync(HttpContext context) =>
            WriteJsonAsync(context, StatusCodes.Status200OK, json =>
            {
                json.WriteStartObject();
                json.WriteString("status", "ok");
                json.WriteEndObject();
            });

        public static Task NotFoundAsync(HttpContext context) =>
            WriteErrorAsync(context, StatusCodes.Status404NotFound, $"no route {context.Request.Method} {context.Request.Path}", null,
                "not_found_error");

        public Task ModelsAsync(HttpContext context) =>
            WriteJsonAsync(context, StatusCodes.Status200OK, json =>
            {
                json.WriteStartObject();
                json.WriteString("object", "list");
                json.WriteStartArray("data");
                json.WriteStartObject();
                json.WriteString("id", _engine.Profile.Name);
                json.WriteString("object", "model");
                json.WriteNumber("created", _created);
                json.WriteString("owned_by", "lens");
                json.WriteNumber("max_model_len", _engine.MaxModelLen);
                json.WriteNumber("max_num_seqs", _engine.MaxNumSeqs);
                json.WriteEndObject();
                json.WriteEndArray();
                json.WriteEndObject();
            });

        public async Task CompletionsAsync(HttpContext context)
        {
            CompletionRequest request;
            try
            {
                using var doc = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted);
                request = Parse(doc.RootElement);
            }
            catch (JsonException ex)
            {
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, $"the request body is not valid JSON: {ex.Message}", null);
                return;
            }
            catch (BadRequestException ex)
            {
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, ex.Message, ex.Param);
                return;
            }

            var id = $"cmpl-{_engine.Profile.Name}-{Interlocked.Increment(ref _requests)}";
            var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            try
            {
                if (request.Stream)
                {
                    await StreamAsync(context, request, id, created);
                }
                else
                {
                    var result = await _engine.GenerateAsync(request.Prompt, request.MaxTokens, null, context.RequestAborted);
                    await WriteJsonAsync(context, StatusCodes.Status200OK, json =>
                    {
                        WriteHead(json, id, created);
                        json.WriteStartArray("choices");
                        json.WriteStartObject();
                        json.WriteNumber("index", 0);
                        json.WriteString("text", string.Concat(result.Tokens.Select(t => _tokenText[t])));
                        json.WriteNull("logprobs");
                        json.WriteString("finish_reason", "length");
                        json.WriteEndObject();
                        json.WriteEndArray();
                        WriteUsage(json, request.Prompt.Length, result.OutputLength);
                        json.WriteEndObject();
                    });
                }
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away; nothing to answer.
            }
        }

        private async Task StreamAsync(HttpContext context, CompletionRequest request, string id, long created)
        {
            var response = context.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            await response.StartAsync(context.RequestAborted);

            var buffer = new ArrayBufferWriter<byte>(512);
            using var json = new Utf8JsonWriter(buffer);
            var count = 0;

            async ValueTask SendAsync()
            {
                await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
                await response.Body.FlushAsync(context.RequestAborted);
            }

            void Begin()
            {
                buffer.ResetWrittenCount();
                json.Reset(buffer);
                buffer.Write("data: "u8);
            }

            void End()
            {
                json.Flush();
                buffer.Write("\n\n"u8);
            }

            async ValueTask OnTokenAsync(int token)
            {
                count++;
                Begin();
                WriteHead(json, id, created);
                json.WriteStartArray("choices");
                json.WriteStartObject();
                json.WriteNumber("index", 0);
                json.WriteString("text", _tokenText[token]);
                json.WriteNull("logprobs");
                if (count == request.MaxTokens)
                {
                    json.WriteString("finish_reason", "length");
                }
                else
                {
                    json.WriteNull("finish_reason");
                }

                json.WriteEndObject();
                json.WriteEndArray();
                json.WriteEndObject();
                End();
                await SendAsync();
            }

            try
            {
                var result = await _engine.GenerateAsync(request.Prompt, request.MaxTokens, OnTokenAsync, context.RequestAborted);
                if (request.IncludeUsage)
                {
                    Begin();
                    WriteHead(json, id, created);
                    json.WriteStartArray("choices");
                    json.WriteEndArray();
                    WriteUsage(json, request.Prompt.Length, result.OutputLength);
                    json.WriteEndObject();
                    End();
                    await SendAsync();
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Headers are gone: report in the stream, as OpenAI-compatible servers do.
                Begin();
                WriteErrorBody(json, $"generation failed: {ex.Message}", null, "server_error");
                End();
                await SendAsync();
            }

            buffer.ResetWrittenCount();
            buffer.Write("data: [DONE]\n\n"u8);
            await SendAsync();
        }

        private CompletionRequest Parse(JsonElement root)
        {
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new BadRequestException($"the request body must be a JSON object, not {Kind(root)}", null);
            }

            if (!root.TryGetProperty("model", out var model) || model.ValueKind == JsonValueKind.Null)
            {
                throw new BadRequestException("'model' is required", "model");
            }

            if (model.ValueKind != JsonValueKind.String)
            {
                throw new BadRequestException($"'model' must be a string, not {Kind(model)}", "model");
            }

            if (model.GetString() != _engine.Profile.Name)
            {
                throw new BadRequestException(
                    $"the model '{model.GetString()}' does not exist; this server serves '{_engine.Profile.Name}'", "model");
            }

            if (!root.TryGetProperty("prompt", out var promptElement) || promptElement.ValueKind == JsonValueKind.Null)
            {
                throw new BadRequestException("'prompt' is required", "prompt");
            }

            var prompt = ParsePrompt(promptElement);
            var maxTokens = OptionalInt(root, "max_tokens") ?? 16;
            if (maxTokens < 1)
            {
                throw new BadRequestException($"'max_tokens' is {maxTokens}; it must be at least 1", "max_tokens");
            }

            var minTokens = OptionalInt(root, "min_tokens");
            if (minTokens is < 0 || minTokens > maxTokens)
            {
                throw new BadRequestException($"'min_tokens' is {minTokens}; it must be within 0..max_tokens ({maxTokens})", "min_tokens");
            }

            _ = OptionalBool(root, "ignore_eos");
            if (root.TryGetProperty("temperature", out var temperature) && temperature.ValueKind != JsonValueKind.Null &&
                (temperature.ValueKind != JsonValueKind.Number || temperature.GetDouble() is < 0 or > 2))
            {
                throw new BadRequestException(
                    $"'temperature' must be a number within 0..2 (decoding is greedy either way), not {temperature}", "temperature");
            }

            var stream = OptionalBool(root, "stream") ?? false;
            var includeUsage = false;
            if (root.TryGetProperty("stream_options", out var options) && options.ValueKind != JsonValueKind.Null)
            {
                if (options.ValueKind != JsonValueKind.Object)
                {
                    throw new BadRequestException($"'stream_options' must be an object, not {Kind(options)}", "stream_options");
                }

                includeUsage = OptionalBool(options, "include_usage", "stream_options.include_usage") ?? false;
            }

            if (_engine.CheckRequest(prompt.Length, maxTokens) is { } reason)
            {
                var param = prompt.Length < 1 || prompt.Length > _engine.Buckets.MaxPrompt ? "prompt" : "max_tokens";
                throw new BadRequestException(
                    $"this model's maximum context length is {_engine.MaxModelLen} tokens and its longest prompt " +
                    $"{_engine.Buckets.MaxPrompt} tokens; you requested {prompt.Length} prompt and {maxTokens} completion tokens: {reason}",
                    param);
            }

            return new CompletionRequest(prompt, maxTokens, stream, includeUsage);
        }

        private int[] ParsePrompt(JsonElement prompt)
        {
            var vocab = _engine.Profile.Vocab;
            if (prompt.ValueKind == JsonValueKind.String)
            {
                return EngineTokenizer.Tokenize(prompt.GetString()!, vocab);
            }

            if (prompt.ValueKind != JsonValueKind.Array)
            {
                throw new BadRequestException($"'prompt' must be a string or a list of token ids, not {Kind(prompt)}", "prompt");
            }

            var length = prompt.GetArrayLength();
            if (length == 1 && prompt[0].ValueKind is JsonValueKind.String or JsonValueKind.Array)
            {
                return ParsePrompt(prompt[0]); // a batch of one prompt
            }

            var ids = new int[length];
            var i = 0;
            foreach (var item in prompt.EnumerateArray())
            {
                if (item.ValueKind is JsonValueKind.String or JsonValueKind.Array)
                {
                    throw new BadRequestException("'prompt' holds several prompts; this server takes one prompt per request", "prompt");
                }

                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var id))
                {
                    throw new BadRequestException($"'prompt' token #{i} is {item.GetRawText()}; token ids are integers", "prompt");
                }

                if (id < 0 || id >= vocab)
                {
                    throw new BadRequestException($"'prompt' token #{i} is {id}; token ids must be within 0..{vocab - 1}", "prompt");
                }

                ids[i++] = id;
            }

            return ids;
        }

        private static int? OptionalInt(JsonElement parent, string name)
        {
            if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return null;
            }

            if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var n))
            {
                throw new BadRequestException($"'{name}' must be an integer, not {value.GetRawText()}", name);
            }

            return n;
        }

        private static bool? OptionalBool(JsonElement parent, string name, string? param = null)
        {
            if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return null;
            }

            return value.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new BadRequestException($"'{param ?? name}' must be true or false, not {value.GetRawText()}", param ?? name),
            };
        }

        private static string Kind(JsonElement element) => element.ValueKind switch
        {
            JsonValueKind.Object => "an object",
            JsonValueKind.Array => "a list",
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            _ => "null",
        };

        private void WriteHead(Utf8JsonWriter json, string id, long created)
        {
            json.WriteStartObject();
            json.WriteString("id", id);
            json.WriteString("object", "text_completion");
            json.WriteNumber("created", created);
            json.WriteString("model", _engine.Profile.Name);
        }

        private static void WriteUsage(Utf8JsonWriter json, int prompt, int completion)
        {
            json.WriteStartObject("usage");
            json.WriteNumber("prompt_tokens", prompt);
            json.WriteNumber("completion_tokens", completion);
            json.WriteNumber("total_tokens", prompt + completion);
            json.WriteEndObject();
        }

        private static Task WriteErrorAsync(HttpContext context, int status, string message, string? param,
            string type = "invalid_request_error") =>
            WriteJsonAsync(context, status, json => WriteErrorBody(json, message, param, type));

        private static void WriteErrorBody(Utf8JsonWriter json, string message, string? param, string type)
        {
            json.WriteStartObject();
            json.WriteStartObject("error");
            json.WriteString("message", message);
            json.WriteString("type", type);
            if (param is null)
            {
                json.WriteNull("param");
            }
            else
            {
                json.WriteString("param", param);
            }

            json.WriteNull("code");
            json.WriteEndObject();
            json.WriteEndObject();
        }

        private static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
        {
            var buffer = new ArrayBufferWriter<byte>(256);
            using (var json = new Utf8JsonWriter(buffer))
            {
                write(json);
            }

            context.Response.StatusCode = status;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = buffer.WrittenCount;
            await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
        }
    }

    private sealed record CompletionRequest(int[] Prompt, int MaxTokens, bool Stream, bool IncludeUsage);

    private sealed class BadRequestException(string message, string? param) : Exception(message)
    {
        public string? Param { get; } = param;
    }
}
