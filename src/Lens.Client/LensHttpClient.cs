using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Lens.Abstractions;
using Microsoft.Extensions.Http.Resilience;
using Polly;

namespace Lens.Client;

/// <summary>
/// A typed client of the LENS HTTP API, bound to one tenant's API key (sent as <c>X-Api-Key</c> on every request, never logged).
/// The <see cref="HttpClient"/> is the caller's (its <see cref="HttpClient.BaseAddress"/> is the server, e.g. <c>http://127.0.0.1:5080/</c>)
/// and may be shared. Failures throw <see cref="LensApiException"/> with the server's problem details. Idempotent calls (reads and
/// predictions) are retried under <see cref="Retry"/> when the server answers 5xx, 408 or 429 (a silo failing over answers 503 with
/// <c>Retry-After</c>) or the connection fails; creating deployments, starting profiles and sending measurements are sent once.
/// </summary>
public sealed class LensHttpClient
{
    public const string ApiKeyHeader = "X-Api-Key";

    private readonly HttpClient _http;
    private readonly string _apiKey;

    /// <summary>
    /// Whether <see cref="PredictManyAsync"/> sends and receives the binary batch form (<see cref="BatchCodec.MediaType"/>) instead of
    /// JSON; on by default, since JSON number formatting dominates a large batch's cost (docs/performance.md).
    /// </summary>
    public bool BinaryBatches { get; init; } = true;

    /// <summary>
    /// The retry of idempotent calls: by default up to 4 retries, exponential backoff from 200 ms with jitter (at most 5 s), waiting
    /// at least what a <c>Retry-After</c> header asks. <see cref="ResiliencePipeline{T}.Empty"/> sends every call once.
    /// </summary>
    public ResiliencePipeline<HttpResponseMessage> Retry { get; init; } = DefaultRetry;

    /// <summary>The default <see cref="Retry"/>.</summary>
    public static ResiliencePipeline<HttpResponseMessage> DefaultRetry { get; } = new ResiliencePipelineBuilder<HttpResponseMessage>()
        .AddRetry(new HttpRetryStrategyOptions
        {
            MaxRetryAttempts = 4,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(200),
            MaxDelay = TimeSpan.FromSeconds(5),
            UseJitter = true,
            ShouldRetryAfterHeader = true,
        })
        .Build();

    public LensHttpClient(HttpClient http, string apiKey)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentException.ThrowIfNullOrEmpty(apiKey);
        _http = http;
        _apiKey = apiKey;
    }

    public async Task<DeploymentInfo> CreateDeploymentAsync(string device, DeploymentSpec spec, CancellationToken cancellationToken = default) =>
        await SendAsync<DeploymentInfo>(HttpMethod.Post, $"{Device(device)}/deployments", spec, cancellationToken);

    /// <summary>The tenant's devices (each listed from its first deployment on) with their deployment counts, sorted by name.</summary>
    public async Task<DeviceSummary[]> ListDevicesAsync(CancellationToken cancellationToken = default) =>
        await SendAsync<DeviceSummary[]>(HttpMethod.Get, "v1/devices", null, cancellationToken);

    public async Task<DeploymentInfo[]> ListDeploymentsAsync(string device, CancellationToken cancellationToken = default) =>
        await SendAsync<DeploymentInfo[]>(HttpMethod.Get, $"{Device(device)}/deployments", null, cancellationToken);

    public async Task<DeploymentInfo> GetDeploymentAsync(string device, string deployment, CancellationToken cancellationToken = default) =>
        await SendAsync<DeploymentInfo>(HttpMethod.Get, Deployment(device, deployment), null, cancellationToken);

    /// <summary>Starts profiling every bucket, or only <paramref name="bucket"/> (e.g. <c>decode-256</c>).</summary>
    public async Task<ProfileProgress> StartProfileAsync(string device, string deployment, string? bucket = null,
        CancellationToken cancellationToken = default) =>
        await SendAsync<ProfileProgress>(HttpMethod.Post, $"{Deployment(device, deployment)}/profile", new ProfileRequest(bucket), cancellationToken);

    public async Task<ProfileProgress> GetProfileProgressAsync(string device, string deployment, CancellationToken cancellationToken = default) =>
        await SendAsync<ProfileProgress>(HttpMethod.Get, $"{Deployment(device, deployment)}/profile", null, cancellationToken);

    /// <summary>Polls the progress every <paramref name="pollInterval"/> until the run finishes or <paramref name="cancellationToken"/> fires.</summary>
    public async Task<ProfileProgress> WaitForProfileAsync(string device, string deployment, TimeSpan pollInterval,
        CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var progress = await GetProfileProgressAsync(device, deployment, cancellationToken);
            if (progress.IsFinished || progress.State == ProfileState.None)
            {
                return progress;
            }

            await Task.Delay(pollInterval, cancellationToken);
        }
    }

    public async Task<IntakeResult> ImportMeasurementsAsync(string device, string deployment, MeasurementBatch batch,
        CancellationToken cancellationToken = default) =>
        await SendAsync<IntakeResult>(HttpMethod.Post, $"{Deployment(device, deployment)}/measurements", batch, cancellationToken);

    public async Task<IntakeResult> ReportTelemetryAsync(string device, string deployment, MeasurementBatch batch,
        CancellationToken cancellationToken = default) =>
        await SendAsync<IntakeResult>(HttpMethod.Post, $"{Deployment(device, deployment)}/telemetry", batch, cancellationToken);

    public async Task<BucketSnapshot[]> GetBucketsAsync(string device, string deployment, CancellationToken cancellationToken = default) =>
        await SendAsync<BucketSnapshot[]>(HttpMethod.Get, $"{Deployment(device, deployment)}/buckets", null, cancellationToken);

    /// <summary>Per-bucket health against observed latencies: observed MAPE, shift, band, drift counts, staleness, last profile.</summary>
    public async Task<DeploymentHealth> GetHealthAsync(string device, string deployment, CancellationToken cancellationToken = default) =>
        await SendAsync<DeploymentHealth>(HttpMethod.Get, $"{Deployment(device, deployment)}/health", null, cancellationToken);

    /// <summary>Live-traffic monitoring from the deployment's OTLP spans: requests received, analyses, the latest window's cells.</summary>
    public async Task<TrafficStatus> GetTrafficAsync(string device, string deployment, CancellationToken cancellationToken = default) =>
        await SendAsync<TrafficStatus>(HttpMethod.Get, $"{Deployment(device, deployment)}/traffic", null, cancellationToken);

    /// <summary>The deployment's drift analyses over time, oldest first: the newest <paramref name="last"/> (all when null).</summary>
    public async Task<DeploymentHealthHistory> GetHealthHistoryAsync(string device, string deployment, int? last = null,
        CancellationToken cancellationToken = default) =>
        await SendAsync<DeploymentHealthHistory>(HttpMethod.Get,
            $"{Deployment(device, deployment)}/health/history{(last is { } k ? FormattableString.Invariant($"?last={k}") : "")}", null, cancellationToken);

    public async Task<MeasurementRecord[]> GetBucketMeasurementsAsync(string device, string deployment, string bucket,
        CancellationToken cancellationToken = default) =>
        await SendAsync<MeasurementRecord[]>(HttpMethod.Get,
            $"{Deployment(device, deployment)}/buckets/{Uri.EscapeDataString(bucket)}/measurements", null, cancellationToken);

    /// <param name="refined">Refine the profiled model with the deployment's observed latencies first (opt-in).</param>
    public async Task<PredictionResult> PredictAsync(string device, string deployment, int inputLength, int outputLength,
        CancellationToken cancellationToken = default, bool refined = false) =>
        await SendAsync<PredictionResult>(HttpMethod.Post, $"{Deployment(device, deployment)}/predict",
            new PredictRequest(inputLength, outputLength, refined), cancellationToken, idempotent: true);

    /// <param name="refined">Refine the profiled model with the deployment's observed latencies first (opt-in).</param>
    public async Task<PredictManyResult> PredictManyAsync(string device, string deployment, int[] inputLengths, int[] outputLengths,
        CancellationToken cancellationToken = default, bool refined = false)
    {
        var path = $"{Deployment(device, deployment)}/predict/batch";
        var body = new PredictManyRequest(inputLengths, outputLengths, refined);
        if (!BinaryBatches)
        {
            return await SendAsync<PredictManyResult>(HttpMethod.Post, path, body, cancellationToken, idempotent: true);
        }

        var bytes = BatchCodec.EncodeRequest(body); // the codec refuses unequal lengths before the wire
        using var response = await RawAsync(HttpMethod.Post, path, () =>
        {
            var content = new ByteArrayContent(bytes);
            content.Headers.ContentType = new MediaTypeHeaderValue(BatchCodec.MediaType);
            return content;
        }, idempotent: true, cancellationToken, BatchCodec.MediaType);
        var result = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        try
        {
            return BatchCodec.ReadResult(result);
        }
        catch (FormatException ex)
        {
            throw new LensApiException((int)response.StatusCode, "Unreadable response", $"POST {path}: {ex.Message}");
        }
    }

    /// <summary>The fitted model as the model file's JSON (<c>lens-model</c> format).</summary>
    /// <summary>Serves a trace or a generated workload on the deployment's model with continuous batching.</summary>
    public async Task<SimulationReport> SimulateAsync(string device, string deployment, SimulateRequest request,
        CancellationToken cancellationToken = default) =>
        await SendAsync<SimulationReport>(HttpMethod.Post, $"{Deployment(device, deployment)}/simulate", request, cancellationToken);

    /// <summary>Requests started together: each one's TTFT and E2E (in <see cref="SimulationReport.TtftMs"/> and <see cref="SimulationReport.E2eMs"/>).</summary>
    public async Task<SimulationReport> PredictStaticBatchAsync(string device, string deployment, StaticBatchRequest request,
        CancellationToken cancellationToken = default) =>
        await SendAsync<SimulationReport>(HttpMethod.Post, $"{Deployment(device, deployment)}/predict/static-batch", request, cancellationToken);

    /// <summary>Capacity planning over the tenant's deployments: the fewest replicas of each that meet the SLO, their cost, the cheapest.</summary>
    public async Task<CapacityReport> CapacityAsync(CapacityRequest request, CancellationToken cancellationToken = default) =>
        await SendAsync<CapacityReport>(HttpMethod.Post, "v1/capacity", request, cancellationToken);

    /// <summary>The model JSON of a bucket set never profiled, read from the deployment's cost curves.</summary>
    public Task<string> WhatIfAsync(string device, string deployment, WhatIfRequest request, CancellationToken cancellationToken = default) =>
        PostForJsonTextAsync($"{Deployment(device, deployment)}/whatif", request, cancellationToken);

    /// <summary>The advisor's recommendation for a workload, as the advice document's JSON.</summary>
    public Task<string> AdviseAsync(string device, string deployment, AdviseRequest request, CancellationToken cancellationToken = default) =>
        PostForJsonTextAsync($"{Deployment(device, deployment)}/advise", request, cancellationToken);

    public async Task<string> GetModelJsonAsync(string device, string deployment, CancellationToken cancellationToken = default)
    {
        using var response = await RawAsync(HttpMethod.Get, $"{Deployment(device, deployment)}/model", () => null, idempotent: true, cancellationToken);
        return await response.Content.ReadAsStringAsync(cancellationToken);
    }

    /// <summary>POSTs <paramref name="body"/> and returns the answer's JSON text as it came (documents the SDK does not re-type).</summary>
    private async Task<string> PostForJsonTextAsync(string path, object body, CancellationToken cancellationToken)
    {
        using var response = await RawAsync(HttpMethod.Post, path, () => JsonContent.Create(body, body.GetType(), options: LensJson.Options),
            idempotent: true, cancellationToken);
        return await response.Content.ReadAsStringAsync(cancellationToken);
    }

    /// <param name="idempotent">Retry under <see cref="Retry"/>; reads (GET) always are.</param>
    private async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken cancellationToken, bool idempotent = false)
    {
        using var response = await RawAsync(method, path, () => body is null ? null : JsonContent.Create(body, body.GetType(), options: LensJson.Options),
            idempotent || method == HttpMethod.Get, cancellationToken);
        return await response.Content.ReadFromJsonAsync<T>(LensJson.Options, cancellationToken)
               ?? throw new LensApiException((int)response.StatusCode, "Empty response", $"{method} {path} returned no body");
    }

    /// <param name="content">Builds the body for each attempt (a sent request's content cannot be sent again).</param>
    private async Task<HttpResponseMessage> RawAsync(HttpMethod method, string path, Func<HttpContent?> content, bool idempotent,
        CancellationToken cancellationToken, string? accept = null)
    {
        var response = idempotent
            ? await Retry.ExecuteAsync(async ct => await SendOnceAsync(method, path, content, accept, ct), cancellationToken)
            : await SendOnceAsync(method, path, content, accept, cancellationToken);
        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            throw await ToExceptionAsync(response, cancellationToken);
        }
    }

    private async Task<HttpResponseMessage> SendOnceAsync(HttpMethod method, string path, Func<HttpContent?> content, string? accept,
        CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Add(ApiKeyHeader, _apiKey);
        if (accept is not null)
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(accept));
        }

        request.Content = content();
        return await _http.SendAsync(request, cancellationToken);
    }

    private static async Task<LensApiException> ToExceptionAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            var title = root.TryGetProperty("title", out var t) ? t.GetString() : response.ReasonPhrase;
            var detail = root.TryGetProperty("detail", out var d) ? d.GetString() : null;
            var errors = new Dictionary<string, string[]>();
            if (root.TryGetProperty("errors", out var e) && e.ValueKind == JsonValueKind.Object)
            {
                foreach (var field in e.EnumerateObject())
                {
                    errors[field.Name] = field.Value.ValueKind == JsonValueKind.Array
                        ? [.. field.Value.EnumerateArray().Select(v => v.ToString())]
                        : [field.Value.ToString()];
                }
            }

            return new LensApiException(status, title, detail, errors);
        }
        catch (JsonException)
        {
            return new LensApiException(status, response.ReasonPhrase, text.Length > 500 ? text[..500] : text);
        }
    }

    private static string Device(string device) => $"v1/devices/{Uri.EscapeDataString(device)}";

    private static string Deployment(string device, string deployment) => $"{Device(device)}/deployments/{Uri.EscapeDataString(deployment)}";
}
