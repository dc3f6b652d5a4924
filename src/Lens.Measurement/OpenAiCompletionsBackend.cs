using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Lens.Measurement;

/// <summary>
/// Times one request of exactly <c>I</c> prompt and <c>O</c> output tokens against an OpenAI-compatible completions endpoint
/// (vLLM on Neuron or Gaudi, RBLN, Furiosa; the built-in reference engine): <c>POST {base}/completions</c>, streamed, with
/// <c>max_tokens = min_tokens = O</c>, <c>ignore_eos</c> and greedy sampling. TTFT is taken at the first token chunk, E2E at the end of
/// the stream, both on the monotonic clock from just before the request is sent; the gaps between token chunks are kept.
/// The server's <c>usage</c> must report exactly <c>I</c> and <c>O</c> tokens, or the measurement fails.
/// Faults are classed transient (5xx, 408, 429, timeouts, refused or dropped connections) or not. With
/// <see cref="OpenAiCompletionsOptions.MaxRetries"/> above 0 transient ones are retried here with exponential backoff and only the
/// final, successful attempt is timed; the default, 0, makes one HTTP request per call (plus the model listing once), for
/// <see cref="MeasurementLoop"/>, which holds profiling's one retry budget. Safe for concurrent calls (groups of batch buckets, load replay); a profiler still serializes its
/// measurements per device (an NPU is exclusive).
/// </summary>
public sealed partial class OpenAiCompletionsBackend : IMeasurementBackend, IDisposable
{
    private const int MaxErrorBodyBytes = 64 * 1024;
    private const int MaxErrorMessageChars = 1000;

    private readonly OpenAiCompletionsOptions _options;
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly string? _apiKey;
    private readonly ResiliencePipeline _pipeline;
    private readonly Uri _completions;
    private readonly Uri _models;
    private readonly string _where;
    private readonly ILogger _logger;
    private readonly Random _random;
    private readonly Lock _gate = new();
    private string? _model;

    /// <param name="options">Where, which model, key, retries.</param>
    /// <param name="httpClient">A client to use (not disposed here; its own timeout should be infinite); null creates one.</param>
    /// <param name="logger">Receives retry notices (never the key); null logs nothing.</param>
    public OpenAiCompletionsBackend(OpenAiCompletionsOptions options, HttpClient? httpClient = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _apiKey = string.IsNullOrEmpty(options.ApiKey) ? null : options.ApiKey;
        if (_apiKey is null && !string.IsNullOrEmpty(options.ApiKeyEnvironmentVariable))
        {
            _apiKey = Environment.GetEnvironmentVariable(options.ApiKeyEnvironmentVariable);
            if (string.IsNullOrEmpty(_apiKey))
            {
                throw new ArgumentException(
                    $"the environment variable {options.ApiKeyEnvironmentVariable}, named to hold the API key, is not set or empty");
            }
        }

        _model = string.IsNullOrWhiteSpace(options.Model) ? null : options.Model;
        var root = options.BaseAddress.AbsoluteUri.EndsWith('/') ? options.BaseAddress : new Uri(options.BaseAddress.AbsoluteUri + "/");
        _completions = new Uri(root, "completions");
        _models = new Uri(root, "models");
        _where = OpenAiCompletionsOptions.Redact(root);
        _logger = logger ?? NullLogger.Instance;
        _random = new Random(options.Seed);
        if (httpClient is null)
        {
            // No limit on connections per server: a group of b requests needs b connections at once (HTTP/1.1).
            var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), MaxConnectionsPerServer = int.MaxValue };
            if (options.RefuseLocalAddresses)
            {
                handler.ConnectCallback = EndpointPolicy.ConnectAsync;
            }

            _http = new HttpClient(handler)
            {
                Timeout = Timeout.InfiniteTimeSpan,
            };
            _ownsHttp = true;
        }
        else
        {
            _http = httpClient;
        }

        _pipeline = BuildPipeline(options, _logger);
    }

    /// <summary><see cref="OpenAiCompletionsOptions.MaxRetries"/>: the retries this backend makes inside one call.</summary>
    public int RetriesPerCall => _options.MaxRetries;

    public string Describe => $"OpenAI-compatible completions at {_where} (model {_model ?? "chosen by the server's model list"})";

    /// <summary>The model measured: the option's, or the one the server listed once a request has been made.</summary>
    public string? Model => _model;

    public async Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default)
    {
        CheckLengths(inputLength, outputLength);

        var model = await EnsureModelAsync(cancellationToken);
        return await RunAsync(
            ct => AttemptAsync(model, inputLength, outputLength, null, ct),
            $"measuring I = {inputLength}, O = {outputLength}",
            cancellationToken);
    }

    /// <summary>
    /// Times one request from <paramref name="releaseTimestamp"/>: TTFT and E2E run from that instant, and the send lag is the time
    /// from it to the send. A retry would start late, so replays use <see cref="OpenAiCompletionsOptions.MaxRetries"/> = 0.
    /// </summary>
    public async Task<TimedRequest> MeasureFromAsync(int inputLength, int outputLength, long releaseTimestamp,
        CancellationToken cancellationToken = default)
    {
        CheckLengths(inputLength, outputLength);
        var model = await EnsureModelAsync(cancellationToken);
        return await RunAsync(
            ct => AttemptAsync(model, inputLength, outputLength, releaseTimestamp, ct),
            $"measuring I = {inputLength}, O = {outputLength}",
            cancellationToken);
    }

    /// <summary>
    /// A group of <paramref name="batch"/> identical requests released at once, each with its own random prompt (so none hits a prefix
    /// cache), all sent concurrently over the client's connection pool (no per-server connection limit) and timed from the common
    /// release. A transient fault of any member re-runs the whole group under the retry policy; only the successful attempt is timed.
    /// </summary>
    public async Task<IReadOnlyList<TimedRequest>> MeasureGroupAsync(int inputLength, int outputLength, int batch,
        CancellationToken cancellationToken = default)
    {
        CheckLengths(inputLength, outputLength);
        var model = await EnsureModelAsync(cancellationToken);
        return await RunAsync(
            async ct => await MeasurementGroup.RunAsync(batch, (release, mct) => AttemptAsync(model, inputLength, outputLength, release, mct).AsTask(), ct),
            $"measuring a group of {batch} x (I = {inputLength}, O = {outputLength})",
            cancellationToken);
    }

    /// <summary>The model measured: the option's, or the only one the server lists (asked once, under the retry policy).</summary>
    public async Task<string> EnsureModelAsync(CancellationToken cancellationToken = default) =>
        _model ?? await RunAsync(ResolveModelAsync, "listing the served models", cancellationToken);

    private static void CheckLengths(int inputLength, int outputLength)
    {
        if (inputLength < 1 || outputLength < 1)
        {
            throw new MeasurementFailedException($"lengths must be at least 1; got I = {inputLength}, O = {outputLength}", isTransient: false);
        }
    }

    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }

    private static ResiliencePipeline BuildPipeline(OpenAiCompletionsOptions options, ILogger logger)
    {
        var builder = new ResiliencePipelineBuilder { TimeProvider = options.TimeProvider };
        if (options.MaxRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder()
                    .Handle<MeasurementFailedException>(e => e.IsTransient)
                    .Handle<TimeoutRejectedException>(),
                MaxRetryAttempts = options.MaxRetries,
                Delay = options.RetryBaseDelay,
                MaxDelay = options.MaxRetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                OnRetry = args =>
                {
                    var reason = args.Outcome.Exception is TimeoutRejectedException
                        ? $"no complete answer within {options.AttemptTimeout.TotalSeconds:0.###} s"
                        : args.Outcome.Exception?.Message ?? "no answer";
                    logger.LogWarning("attempt {Attempt} failed ({Reason}); retrying in {Delay:0.###} s", args.AttemptNumber + 1, reason,
                        args.RetryDelay.TotalSeconds);
                    options.OnRetry?.Invoke(new MeasurementRetry(args.AttemptNumber + 1, reason, args.RetryDelay));
                    return default;
                },
            });
        }

        // Inside the retry: every attempt gets its own limit.
        builder.AddTimeout(options.AttemptTimeout);
        return builder.Build();
    }

    /// <summary>Runs one operation under the retry and timeout pipeline and turns what is left of a fault into a clear failure.</summary>
    private async Task<T> RunAsync<T>(Func<CancellationToken, ValueTask<T>> operation, string what, CancellationToken cancellationToken)
    {
        var attempts = 0;
        try
        {
            return await _pipeline.ExecuteAsync(
                async ct =>
                {
                    attempts++;
                    return await operation(ct);
                },
                cancellationToken);
        }
        catch (MeasurementFailedException e) when (e.IsTransient)
        {
            throw new MeasurementFailedException(Scrub($"{e.Message} ({Context(what, attempts)})"), isTransient: true, e);
        }
        catch (TimeoutRejectedException e)
        {
            throw new MeasurementFailedException(
                $"{_where} gave no complete answer within {_options.AttemptTimeout.TotalSeconds:0.###} s ({Context(what, attempts)})",
                isTransient: true,
                e);
        }
    }

    /// <summary>What was being done and, when this backend retried, after how many attempts it gave up.</summary>
    private static string Context(string what, int attempts) => attempts <= 1 ? what : $"{what}; gave up after {attempts} attempts";

    private async ValueTask<string> ResolveModelAsync(CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, _models);
        Authorize(request);
        using var response = await SendAsync(request, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        string[] ids;
        try
        {
            using var doc = JsonDocument.Parse(body);
            ids = doc.RootElement.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Array
                ? data.EnumerateArray()
                    .Select(m => m.ValueKind == JsonValueKind.Object && m.TryGetProperty("id", out var id) ? id.GetString() : null)
                    .OfType<string>()
                    .ToArray()
                : [];
        }
        catch (JsonException e)
        {
            throw new MeasurementFailedException($"{_where}models did not answer with JSON: {e.Message}", isTransient: false, e);
        }

        var model = ids.Length switch
        {
            0 => throw new MeasurementFailedException($"{_where}models lists no model; name the model to measure", isTransient: false),
            1 => ids[0],
            _ => throw new MeasurementFailedException(
                Scrub($"{_where} serves several models ({string.Join(", ", ids.Take(10))}); name the one to measure"), isTransient: false),
        };
        _model = model;
        return model;
    }

    /// <param name="release">The instant the times run from; null: just before the send.</param>
    private async ValueTask<TimedRequest> AttemptAsync(string model, int inputLength, int outputLength, long? release, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, _completions)
        {
            Content = new ByteArrayContent(BuildBody(model, inputLength, outputLength)),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        Authorize(request);

        var sent = Stopwatch.GetTimestamp();
        var start = release ?? sent;
        using var response = await SendAsync(request, ct);
        try
        {
            var streamed = response.Content.Headers.ContentType?.MediaType?.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase) == true;
            var seen = streamed ? await ReadStreamAsync(response, start, ct) : await ReadWholeAsync(response, start, ct);
            return Check(seen, inputLength, outputLength) with { SendLagMs = Stopwatch.GetElapsedTime(start, sent).TotalMilliseconds };
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            ct.ThrowIfCancellationRequested(); // a read torn down by the attempt's timeout or the caller, not by the server
            throw new MeasurementFailedException(Scrub($"the connection to {_where} broke while reading the answer: {e.Message}"), isTransient: true, e);
        }
        catch (JsonException e)
        {
            throw new MeasurementFailedException($"{_where}completions sent a chunk that is not valid JSON: {e.Message}", isTransient: false, e);
        }
    }

    private void Authorize(HttpRequestMessage request)
    {
        if (_apiKey is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
        }
    }

    /// <summary>Sends a request and returns a successful response; faults become <see cref="MeasurementFailedException"/>s.</summary>
    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        }
        catch (HttpRequestException e) when (e.InnerException is EndpointRefusedException refused)
        {
            throw new MeasurementFailedException(refused.Message, isTransient: false, e);
        }
        catch (HttpRequestException e)
        {
            ct.ThrowIfCancellationRequested();
            throw new MeasurementFailedException(Scrub($"cannot reach {_where}: {e.Message}"), isTransient: true, e);
        }
        catch (TaskCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new MeasurementFailedException($"the HTTP client timed out waiting for {_where}", isTransient: true, e);
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var code = (int)response.StatusCode;
            var message = await ReadErrorAsync(response, ct);
            var transient = code >= 500 || response.StatusCode is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests;
            throw new MeasurementFailedException(
                Scrub($"{request.RequestUri?.AbsolutePath} answered {code} {response.ReasonPhrase}: {message}"), transient);
        }
    }

    private byte[] BuildBody(string model, int inputLength, int outputLength)
    {
        var buffer = new ArrayBufferWriter<byte>(64 + (inputLength * 5));
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("model", model);
            if (_options.Prompt == PromptKind.Text)
            {
                json.WriteString("prompt", _options.TextPrompt?.Invoke(inputLength) ?? string.Concat(Enumerable.Repeat(" hi", inputLength)));
            }
            else
            {
                json.WriteStartArray("prompt");
                lock (_gate)
                {
                    for (var n = 0; n < inputLength; n++)
                    {
                        json.WriteNumberValue(_random.Next(_options.PromptTokenIdMin, _options.PromptTokenIdMax));
                    }
                }

                json.WriteEndArray();
            }

            json.WriteNumber("max_tokens", outputLength);
            if (_options.SendExactLengthHints)
            {
                json.WriteNumber("min_tokens", outputLength);
                json.WriteBoolean("ignore_eos", true);
            }

            json.WriteNumber("temperature", 0);
            json.WriteBoolean("stream", true);
            json.WriteStartObject("stream_options");
            json.WriteBoolean("include_usage", true);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
