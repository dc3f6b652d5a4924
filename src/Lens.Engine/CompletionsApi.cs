using System.Buffers;
using System.Text.Json;
using Lens.Core;
using Microsoft.AspNetCore.Http;

namespace Lens.Engine;

/// <summary>What the OpenAI-compatible server serves: the reference engine, or the digital twin of a profiled deployment.</summary>
internal interface ICompletionModel
{
    /// <summary>The one model id the server lists and accepts.</summary>
    string Name { get; }

    /// <summary>Token ids are within <c>0 .. Vocab - 1</c>.</summary>
    int Vocab { get; }

    BucketSet Buckets { get; }

    int MaxNumSeqs { get; }

    /// <summary>The bound on prompt plus completion tokens under the scheduling policy (max_model_len).</summary>
    int MaxModelLen { get; }

    /// <summary>The longest prompt under the policy: the longest prefill bucket, or under chunked prefill (prompts run in chunks of
    /// mixed steps, never as one prefill graph) <c>max_model_len - 1</c>.</summary>
    int MaxPrompt { get; }

    /// <summary>Why a request of <paramref name="inputLength"/> prompt and <paramref name="outputLength"/> completion tokens cannot be
    /// served under the policy, or null.</summary>
    string? CheckRequest(int inputLength, int outputLength);

    Task<GenerationResult> GenerateAsync(IReadOnlyList<int> promptTokenIds, int outputTokens, Func<int, ValueTask>? onToken,
        CancellationToken cancellationToken);
}

/// <summary>The request handlers. Parsing is by hand (<see cref="JsonDocument"/>) so that every bad input gets a precise 400.</summary>
internal sealed class CompletionsApi
{
    private readonly ICompletionModel _engine;
    private readonly string[] _tokenText;
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private long _requests;

    public CompletionsApi(ICompletionModel engine)
    {
        _engine = engine;
        _tokenText = new string[engine.Vocab];
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
            json.WriteString("id", _engine.Name);
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

        var id = $"cmpl-{_engine.Name}-{Interlocked.Increment(ref _requests)}";
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

        if (model.GetString() != _engine.Name)
        {
            throw new BadRequestException(
                $"the model '{model.GetString()}' does not exist; this server serves '{_engine.Name}'", "model");
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
            var param = prompt.Length < 1 || prompt.Length > _engine.MaxPrompt ? "prompt" : "max_tokens";
            throw new BadRequestException(
                $"this model's maximum context length is {_engine.MaxModelLen} tokens and its longest prompt " +
                $"{_engine.MaxPrompt} tokens; you requested {prompt.Length} prompt and {maxTokens} completion tokens: {reason}",
                param);
        }

        return new CompletionRequest(prompt, maxTokens, stream, includeUsage);
    }

    private int[] ParsePrompt(JsonElement prompt)
    {
        var vocab = _engine.Vocab;
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
        json.WriteString("model", _engine.Name);
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

internal sealed record CompletionRequest(int[] Prompt, int MaxTokens, bool Stream, bool IncludeUsage);

internal sealed class BadRequestException(string message, string? param) : Exception(message)
{
    public string? Param { get; } = param;
}
