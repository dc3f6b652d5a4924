using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Lens.Measurement;

/// <summary>Reading a completions answer: the token stream or the whole body, its usage counts, and the server's errors.</summary>
public sealed partial class OpenAiCompletionsBackend
{
    /// <summary>What one answer showed: times in stopwatch ticks from the start, and the server's usage.</summary>
    private sealed class Seen
    {
        public long? FirstToken { get; set; }

        public long? LastToken { get; set; }

        public long End { get; set; }

        public List<double> Gaps { get; } = [];

        public int? PromptTokens { get; set; }

        public int? CompletionTokens { get; set; }

        public bool Done { get; set; }

        public bool Streamed { get; init; }
    }

    /// <summary>Reads a server-sent event stream: <c>data:</c> lines, events ended by a blank line, <c>data: [DONE]</c> last.</summary>
    private async Task<Seen> ReadStreamAsync(HttpResponseMessage response, long start, CancellationToken ct)
    {
        var seen = new Seen { Streamed = true };
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var data = new StringBuilder();
        var hasData = false;
        while (true)
        {
            var line = await reader.ReadLineAsync(ct);
            if (line is null || line.Length == 0)
            {
                if (hasData && !seen.Done)
                {
                    OnEvent(data.ToString(), seen, start);
                }

                data.Clear();
                hasData = false;
                if (line is null)
                {
                    break;
                }

                continue;
            }

            if (line[0] == ':' || seen.Done)
            {
                continue; // a comment (keep-alive), or whatever follows [DONE]: read to the end so the connection can be reused
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var field = colon < 0 ? line : line[..colon];
            if (field != "data")
            {
                continue; // event, id, retry: not used by completions streams
            }

            var value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' '))
            {
                value = value[1..];
            }

            if (hasData)
            {
                data.Append('\n');
            }

            data.Append(value);
            hasData = true;
        }

        if (!seen.Done)
        {
            seen.End = Stopwatch.GetTimestamp() - start;
        }

        return seen;
    }

    private void OnEvent(string data, Seen seen, long start)
    {
        var now = Stopwatch.GetTimestamp() - start;
        if (data.Trim() == "[DONE]")
        {
            seen.Done = true;
            seen.End = now;
            return;
        }

        using var doc = JsonDocument.Parse(data);
        var root = doc.RootElement;
        ThrowIfError(root);
        if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && HasToken(choices))
        {
            if (seen.LastToken is { } last)
            {
                seen.Gaps.Add(Stopwatch.GetElapsedTime(0, now - last).TotalMilliseconds);
            }

            seen.FirstToken ??= now;
            seen.LastToken = now;
        }

        ReadUsage(root, seen);
    }

    /// <summary>A chunk carries a token unless it is only a terminator: no text, with a finish reason.</summary>
    private static bool HasToken(JsonElement choices)
    {
        foreach (var choice in choices.EnumerateArray())
        {
            var hasText = choice.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String && text.GetString()!.Length > 0;
            var finished = choice.TryGetProperty("finish_reason", out var reason) && reason.ValueKind == JsonValueKind.String;
            if (hasText || !finished)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Reads a non-streamed answer (a server that ignored <c>stream</c>): E2E only, no TTFT.</summary>
    private async Task<Seen> ReadWholeAsync(HttpResponseMessage response, long start, CancellationToken ct)
    {
        var body = await response.Content.ReadAsStringAsync(ct);
        var seen = new Seen { End = Stopwatch.GetTimestamp() - start, Done = true };
        using var doc = JsonDocument.Parse(body);
        ThrowIfError(doc.RootElement);
        ReadUsage(doc.RootElement, seen);
        return seen;
    }

    private static void ReadUsage(JsonElement root, Seen seen)
    {
        if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
        {
            seen.PromptTokens = ReadCount(usage, "prompt_tokens") ?? seen.PromptTokens;
            seen.CompletionTokens = ReadCount(usage, "completion_tokens") ?? seen.CompletionTokens;
        }
    }

    private static int? ReadCount(JsonElement usage, string name) =>
        usage.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n) ? n : null;

    /// <summary>An error object inside a 200 answer (vLLM streams <c>data: {"error": ...}</c> when a request fails mid-way).</summary>
    private void ThrowIfError(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("error", out var error) || error.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        // Transient when the server calls it its own fault: a 5xx code, or OpenAI's "server_error" type.
        var code = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.Number &&
                   c.TryGetInt32(out var n)
            ? n
            : 0;
        var serverFault = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String &&
                          t.GetString() is "server_error" or "internal_server_error" or "InternalServerError";
        throw new MeasurementFailedException(Scrub($"{_where}completions reported an error in its stream: {ErrorMessage(root, root.GetRawText())}"),
            isTransient: code >= 500 || serverFault);
    }

    private TimedRequest Check(Seen seen, int inputLength, int outputLength)
    {
        if (seen.PromptTokens is null || seen.CompletionTokens is null)
        {
            if (seen.Streamed && !seen.Done)
            {
                throw new MeasurementFailedException($"the stream from {_where}completions ended before its usage and [DONE]", isTransient: true);
            }

            throw new MeasurementFailedException(
                $"{_where}completions reported no usage (prompt_tokens and completion_tokens); the token counts cannot be checked " +
                "(the server must support stream_options.include_usage)",
                isTransient: false);
        }

        if (seen.PromptTokens != inputLength)
        {
            var hint = _options.Prompt == PromptKind.Text ? "; the text prompt does not tokenize to the intended length" : "";
            throw new MeasurementFailedException(
                $"the server counted {seen.PromptTokens} prompt tokens, the request had {inputLength}{hint}", isTransient: false);
        }

        if (seen.CompletionTokens != outputLength)
        {
            throw new MeasurementFailedException(
                $"the server produced {seen.CompletionTokens} output tokens, {outputLength} were asked for " +
                "(does it honour min_tokens and ignore_eos?)",
                isTransient: false);
        }

        if (seen.Streamed && seen.FirstToken is null)
        {
            throw new MeasurementFailedException($"the stream from {_where}completions carried no token chunk", isTransient: false);
        }

        var e2e = Stopwatch.GetElapsedTime(0, seen.End).TotalMilliseconds;
        double? ttft = seen.FirstToken is { } first ? Stopwatch.GetElapsedTime(0, first).TotalMilliseconds : null;
        return new TimedRequest(inputLength, outputLength, e2e, ttft, seen.Streamed ? seen.Gaps : null);
    }

    private static async Task<string> ReadErrorAsync(HttpResponseMessage response, CancellationToken ct)
    {
        string body;
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(ct);
            var buffer = new byte[MaxErrorBodyBytes];
            var length = 0;
            int read;
            while (length < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(length), ct)) > 0)
            {
                length += read;
            }

            body = Encoding.UTF8.GetString(buffer, 0, length);
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            return "(no readable body)";
        }

        if (string.IsNullOrWhiteSpace(body))
        {
            return "(empty body)";
        }

        try
        {
            using var doc = JsonDocument.Parse(body);
            return ErrorMessage(doc.RootElement, body);
        }
        catch (JsonException)
        {
            return Shorten(body.Trim());
        }
    }

    /// <summary>The message of an OpenAI-style error (<c>{"error": {"message": ...}}</c>), vLLM's older form, or FastAPI's.</summary>
    private static string ErrorMessage(JsonElement root, string raw)
    {
        if (root.ValueKind == JsonValueKind.Object)
        {
            if (root.TryGetProperty("error", out var error))
            {
                if (error.ValueKind == JsonValueKind.String)
                {
                    return Shorten(error.GetString()!);
                }

                if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String)
                {
                    return Shorten(m.GetString()!);
                }
            }

            foreach (var name in (string[])["message", "detail"])
            {
                if (root.TryGetProperty(name, out var m) && m.ValueKind == JsonValueKind.String)
                {
                    return Shorten(m.GetString()!);
                }
            }
        }

        return Shorten(raw.Trim());
    }

    private static string Shorten(string text) =>
        text.Length <= MaxErrorMessageChars ? text : string.Create(CultureInfo.InvariantCulture, $"{text[..MaxErrorMessageChars]}... ({text.Length} chars)");

    /// <summary>Removes the key from a message that may quote the server or a request.</summary>
    private string Scrub(string message) =>
        _apiKey is null ? message : message.Replace(_apiKey, "[redacted]", StringComparison.Ordinal);
}
