using System.Text.Json;
using Lens.Abstractions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Lens.Grains;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Lens.Silo;

/// <summary>
/// The HTTP API (JSON; errors as RFC 7807 problem details). Every route under <c>/v1</c> needs header <see cref="ApiKeyHeader"/>
/// and is scoped to that key's tenant: grain keys are built from the tenant the key maps to, so another tenant's names are
/// simply not found (404). Missing or unknown key: 401.
/// </summary>
public static class LensApi
{
    public const string ApiKeyHeader = "X-Api-Key";
    internal const string TenantItem = "lens.tenant";
    private const string Deployment = "/devices/{device}/deployments/{deployment}";

    public static IEndpointRouteBuilder MapLensApi(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGet("/health", () => Results.Ok(new { status = "ok" })).ExcludeFromDescription();

        var v1 = app.MapGroup("/v1").AddEndpointFilter(Authenticate).WithTags("LENS")
            .ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests).ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesValidationProblem();

        // Typed as a route handler (a bare HttpContext lambda would bind as a RequestDelegate and drop its result).
        v1.MapGet("/devices", (Func<HttpContext, Task<IResult>>)(http => Handle(http, async (tenant, grains) =>
                Results.Ok(await grains.GetGrain<IDeviceDirectoryGrain>(tenant).ListAsync()))))
            .Produces<DeviceSummary[]>().WithName("ListDevices")
            .WithSummary("The tenant's devices (each listed from its first deployment on) with their deployment counts, sorted by name");

        v1.MapPost("/devices/{device}/deployments", (HttpContext http, string device) => Handle(http, async (tenant, grains) =>
        {
            var spec = await ReadBodyAsync<DeploymentSpec>(http);
            var result = await DeploymentGrains.CreateAsync(grains, new DeviceKey(tenant, device), spec);
            var location = $"/v1/devices/{device}/deployments/{result.Deployment.Id}";
            return result.Created ? Results.Created(location, result.Deployment) : Results.Ok(result.Deployment);
        })).Accepts<DeploymentSpec>("application/json").Produces<DeploymentInfo>(201).Produces<DeploymentInfo>().ProducesProblem(409)
            .WithName("CreateDeployment").WithSummary("Create a deployment (idempotent for the identical spec; a changed spec needs a new name)");

        v1.MapGet("/devices/{device}/deployments", (HttpContext http, string device) => Handle(http, async (tenant, grains) =>
                Results.Ok(await DeploymentGrains.ListAsync(grains, new DeviceKey(tenant, device)))))
            .Produces<DeploymentInfo[]>().WithName("ListDeployments");

        v1.MapGet(Deployment, (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
                Results.Ok(await DeploymentOf(grains, tenant, device, deployment).GetAsync())))
            .Produces<DeploymentInfo>().WithName("GetDeployment");

        v1.MapPost(Deployment + "/profile", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var request = http.Request.ContentLength is 0 or null && !http.Request.Headers.ContentType.Any()
                ? new ProfileRequest()
                : await ReadBodyAsync<ProfileRequest>(http);
            var progress = await DeploymentOf(grains, tenant, device, deployment).StartProfileAsync(request);
            return Results.Accepted($"/v1/devices/{device}/deployments/{deployment}/profile", progress);
        })).Accepts<ProfileRequest>("application/json").Produces<ProfileProgress>(202).ProducesProblem(409)
            .WithName("StartProfile").WithSummary("Profile every bucket, or one bucket alone ({\"bucket\": \"decode-256\"})");

        v1.MapGet(Deployment + "/profile", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
                Results.Ok(await DeploymentOf(grains, tenant, device, deployment).GetProfileProgressAsync())))
            .Produces<ProfileProgress>().WithName("GetProfileProgress");

        v1.MapPost(Deployment + "/measurements", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var batch = await ReadBodyAsync<MeasurementBatch>(http);
            return Results.Ok(await DeploymentOf(grains, tenant, device, deployment).ImportMeasurementsAsync(batch));
        })).Accepts<MeasurementBatch>("application/json").Produces<IntakeResult>().WithName("ImportMeasurements");

        v1.MapPost(Deployment + "/telemetry", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var batch = await ReadBodyAsync<MeasurementBatch>(http);
            var result = await DeploymentOf(grains, tenant, device, deployment).ReportTelemetryAsync(batch);
            return Results.Accepted(value: result);
        })).Accepts<MeasurementBatch>("application/json").Produces<IntakeResult>(202).WithName("ReportTelemetry")
            .WithSummary("Report observed latencies: compared with the model; a bucket drifting in K consecutive batches is re-profiled alone");

        v1.MapGet(Deployment + "/buckets", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
                Results.Ok(await DeploymentOf(grains, tenant, device, deployment).GetBucketsAsync())))
            .Produces<BucketSnapshot[]>().WithName("GetBuckets");

        v1.MapGet(Deployment + "/health", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
                Results.Ok(await DeploymentOf(grains, tenant, device, deployment).GetHealthAsync())))
            .Produces<DeploymentHealth>().WithName("GetHealth")
            .WithSummary("Per-bucket health against observed latencies: observed MAPE, shift, noise band, drift count, stale flag, last profile");

        v1.MapGet(Deployment + "/health/history", (HttpContext http, string device, string deployment, string? last) => Handle(http, async (tenant, grains) =>
                Results.Ok(await DeploymentOf(grains, tenant, device, deployment).GetHealthHistoryAsync(Last(last)))))
            .Produces<DeploymentHealthHistory>().WithName("GetHealthHistory")
            .WithSummary("The deployment's drift analyses over time, oldest first (?last=K: the newest K): common shift and, per bucket, " +
                         "observed MAPE, shift, noise band, drift count and stale flag");

        v1.MapGet(Deployment + "/buckets/{bucket}/measurements", (HttpContext http, string device, string deployment, string bucket) =>
                Handle(http, async (tenant, grains) =>
                {
                    var info = await DeploymentOf(grains, tenant, device, deployment).GetAsync();
                    if (!info.Buckets.Contains(bucket, StringComparer.Ordinal))
                    {
                        throw LensException.NotFound($"bucket '{bucket}' is not a bucket of deployment '{deployment}'");
                    }

                    var key = new DeviceKey(tenant, device).Deployment(info.Id).Bucket(Core.BucketId.Parse(bucket));
                    return Results.Ok(await grains.GetGrain<IBucketGrain>(key.Format()).GetMeasurementsAsync());
                }))
            .Produces<MeasurementRecord[]>().WithName("GetBucketMeasurements");

        v1.MapPost(Deployment + "/predict", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var request = await ReadBodyAsync<PredictRequest>(http);
            var key = new DeviceKey(tenant, device).Deployment(Name(deployment, "deployment")).Format();
            return Results.Ok(await grains.GetGrain<IPredictorGrain>(tenant).PredictAsync(key, request));
        })).Accepts<PredictRequest>("application/json").Produces<PredictionResult>().ProducesProblem(409).WithName("Predict");

        v1.MapPost(Deployment + "/predict/batch", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var request = http.Request.ContentType is { } type && type.StartsWith(BatchCodec.MediaType, StringComparison.OrdinalIgnoreCase)
                ? await ReadBinaryBatchAsync(http)
                : await ReadBodyAsync<PredictManyRequest>(http);
            var key = new DeviceKey(tenant, device).Deployment(Name(deployment, "deployment")).Format();
            var result = await grains.GetGrain<IPredictorGrain>(tenant).PredictManyAsync(key, request);
            return Accepts(http, BatchCodec.MediaType) ? new BinaryBatchResult(result) : Results.Ok(result);
        })).Accepts<PredictManyRequest>("application/json", BatchCodec.MediaType)
            .Produces<PredictManyResult>(200, "application/json", BatchCodec.MediaType).ProducesProblem(409).WithName("PredictBatch")
            .WithSummary($"Predict many requests; JSON, or the binary form {BatchCodec.MediaType} (Content-Type and Accept) for large batches");

        v1.MapPost(Deployment + "/simulate", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var request = await ReadBodyAsync<SimulateRequest>(http);
            var key = new DeviceKey(tenant, device).Deployment(Name(deployment, "deployment")).Format();
            return Results.Ok(await grains.GetGrain<IPredictorGrain>(tenant).SimulateAsync(key, request));
        })).Accepts<SimulateRequest>("application/json").Produces<SimulationReport>().ProducesProblem(409).WithName("Simulate").WithHeavyBudget()
            .WithSummary("Serve a trace or a generated workload with continuous batching: percentiles, throughput, SLO attainment, goodput");

        v1.MapPost(Deployment + "/predict/static-batch", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var batch = await ReadBodyAsync<StaticBatchRequest>(http);
            var key = new DeviceKey(tenant, device).Deployment(Name(deployment, "deployment")).Format();
            var request = new SimulateRequest(batch?.InputLengths is { } i ? new double[i.Length] : null, batch?.InputLengths, batch?.OutputLengths,
                MaxNumSeqs: batch?.MaxNumSeqs, IncludeRequests: true);
            return Results.Ok(await grains.GetGrain<IPredictorGrain>(tenant).SimulateAsync(key, request));
        })).Accepts<StaticBatchRequest>("application/json").Produces<SimulationReport>().ProducesProblem(409).WithName("PredictStaticBatch").WithHeavyBudget()
            .WithSummary("Requests started together (the paper's batch mode): each one's TTFT and E2E, in the given order");

        v1.MapPost("/capacity", (Func<HttpContext, Task<IResult>>)(http => Handle(http, async (tenant, grains) =>
                Results.Ok(await grains.GetGrain<IPredictorGrain>(tenant).CapacityAsync(CapacityPrices.Apply(await ReadBodyAsync<CapacityRequest>(http),
                    http.RequestServices.GetRequiredService<IConfiguration>(), tenant))))))
            .Accepts<CapacityRequest>("application/json").Produces<CapacityReport>().ProducesProblem(409).WithName("Capacity")
            .WithSummary("The fewest replicas of each of the tenant's deployments that meet a per-request SLO for a workload, their cost, the cheapest")
            .WithHeavyBudget();

        v1.MapPost(Deployment + "/whatif", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var request = await ReadBodyAsync<WhatIfRequest>(http);
            var key = new DeviceKey(tenant, device).Deployment(Name(deployment, "deployment")).Format();
            return Results.Content(await grains.GetGrain<IPredictorGrain>(tenant).WhatIfAsync(key, request), "application/json");
        })).Accepts<WhatIfRequest>("application/json").Produces<string>(200, "application/json").ProducesProblem(409).WithName("WhatIf").WithHeavyBudget()
            .WithSummary("The model of a bucket set never profiled, from the deployment's cost curves (lens-model format, predicted block)");

        v1.MapPost(Deployment + "/advise", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var request = await ReadBodyAsync<AdviseRequest>(http);
            var key = new DeviceKey(tenant, device).Deployment(Name(deployment, "deployment")).Format();
            return Results.Content(await grains.GetGrain<IPredictorGrain>(tenant).AdviseAsync(key, request), "application/json");
        })).Accepts<AdviseRequest>("application/json").Produces<string>(200, "application/json").ProducesProblem(409).WithName("Advise").WithHeavyBudget()
            .WithSummary("Bucket edges under a budget, batch buckets for goodput, replicas for a target rate (the advice document)");

        v1.MapGet(Deployment + "/model", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var key = new DeviceKey(tenant, device).Deployment(Name(deployment, "deployment")).Format();
            return Results.Content(await grains.GetGrain<IPredictorGrain>(tenant).GetModelJsonAsync(key), "application/json");
        })).Produces<string>(200, "application/json").WithName("GetModel").WithSummary("The fitted model in the lens-model file format");

        v1.MapOtlpTraces();
        v1.MapGet(Deployment + "/traffic", (HttpContext http, string device, string deployment) => Handle(http, async (tenant, grains) =>
        {
            var key = new DeviceKey(tenant, device).Deployment(Name(deployment, "deployment"));
            await DeploymentGrains.Get(grains, key).GetAsync(); // 404 for a deployment the tenant lacks
            return Results.Ok(await grains.GetGrain<ITrafficMonitorGrain>(key.Format()).GetStatusAsync());
        })).Produces<TrafficStatus>().WithName("GetTraffic")
            .WithSummary("Live-traffic monitoring from OTLP spans: the latest window's MAPE, common shift and cells (shift, band, streak, flagged)");

        return app;
    }

    private static async ValueTask<object?> Authenticate(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var failures = http.RequestServices.GetRequiredService<AuthFailures>();
        var keys = http.Request.Headers[ApiKeyHeader];
        string? tenant = null;
        if (keys.Count == 1)
        {
            tenant = http.RequestServices.GetRequiredService<TenantResolver>().Resolve(keys[0]);
        }

        if (tenant is null)
        {
            // A valid key is never throttled; a client that spent its failure budget gets 429 for every further failure.
            if (failures.Throttled(http) is { } throttled)
            {
                return throttled;
            }

            failures.Failed(http, keys.Count == 0 ? "missing" : "unknown");
            return keys.Count == 0
                ? Problem(StatusCodes.Status401Unauthorized, "Missing API key", $"send the tenant's API key in the {ApiKeyHeader} header")
                : Problem(StatusCodes.Status401Unauthorized, "Unknown API key", $"the {ApiKeyHeader} header does not hold a valid API key");
        }

        http.Items[TenantItem] = tenant;
        return await next(context);
    }

    private static async Task<IResult> Handle(HttpContext http, Func<string, IGrainFactory, Task<IResult>> body)
    {
        var tenant = (string)http.Items[TenantItem]!;
        try
        {
            return await body(tenant, http.RequestServices.GetRequiredService<IGrainFactory>());
        }
        catch (LensException ex)
        {
            return ex.Kind switch
            {
                LensErrorKind.Validation => Results.ValidationProblem(
                    ex.Errors ?? new Dictionary<string, string[]> { ["request"] = [ex.Message] }, ex.Message, title: "The request is invalid"),
                LensErrorKind.NotFound => Problem(StatusCodes.Status404NotFound, "Not found", ex.Message),
                LensErrorKind.Conflict => Problem(StatusCodes.Status409Conflict, "Conflict", ex.Message),
                LensErrorKind.OutOfRange => Problem(StatusCodes.Status400BadRequest, "Request outside the deployment's buckets", ex.Message),
                LensErrorKind.Unfitted => Problem(StatusCodes.Status409Conflict, "Bucket not fitted", ex.Message),
                LensErrorKind.TooManyRequests => TooMany(http, ex.Message),
                _ => Problem(StatusCodes.Status400BadRequest, "Bad request", ex.Message),
            };
        }
        catch (Exception ex) when (ApiFailures.Classify(http, ex) is { } failure)
        {
            return failure;
        }
    }

    private static IResult Problem(int status, string title, string detail) => Results.Problem(detail, statusCode: status, title: title);

    private static IResult TooMany(HttpContext http, string detail)
    {
        http.Response.Headers.RetryAfter = HeavyRoutes.RetryAfterSeconds;
        return Problem(StatusCodes.Status429TooManyRequests, "Too many heavy calls", detail);
    }

    private static async Task<T> ReadBodyAsync<T>(HttpContext http)
        where T : class
    {
        if (!http.Request.HasJsonContentType())
        {
            throw LensException.Validation("body", "the body must be JSON (Content-Type: application/json)");
        }

        try
        {
            return await JsonSerializer.DeserializeAsync<T>(http.Request.Body, LensJson.Options, http.RequestAborted)
                   ?? throw LensException.Validation("body", "the body is empty (null)");
        }
        catch (JsonException ex)
        {
            var where = ex.Path is { Length: > 0 } path ? $" at {path}" : "";
            throw LensException.Validation("body", $"the body is not a valid {typeof(T).Name}{where}: {FirstLine(ex.Message)}");
        }
    }

    /// <summary>Reads a <see cref="BatchCodec"/> request body, refusing one longer than the largest batch allowed before reading it all.</summary>
    private static async Task<PredictManyRequest> ReadBinaryBatchAsync(HttpContext http)
    {
        var max = http.RequestServices.GetRequiredService<IOptions<LensGrainOptions>>().Value.MaxPredictionsPerCall;
        var limit = BatchCodec.RequestLength(max);
        var reader = http.Request.BodyReader;
        while (true)
        {
            var read = await reader.ReadAsync(http.RequestAborted);
            var buffer = read.Buffer;
            if (buffer.Length > limit)
            {
                reader.AdvanceTo(buffer.End);
                throw LensException.Validation("body", $"the body is longer than {limit} bytes, the most a batch of {max} predictions takes");
            }

            if (!read.IsCompleted)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }

            try
            {
                return BatchCodec.ReadRequest(buffer, max);
            }
            catch (FormatException ex)
            {
                throw LensException.Validation("body", $"the body is not a valid {BatchCodec.MediaType} request: {ex.Message}");
            }
            finally
            {
                reader.AdvanceTo(buffer.End);
            }
        }
    }

    private static bool Accepts(HttpContext http, string mediaType)
    {
        foreach (var value in http.Request.Headers.Accept)
        {
            if (value is not null && value.Contains(mediaType, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A batch result in <see cref="BatchCodec"/>'s binary form, written straight into the response pipe.</summary>
    private sealed class BinaryBatchResult(PredictManyResult result) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            var response = httpContext.Response;
            response.ContentType = BatchCodec.MediaType;
            response.ContentLength = BatchCodec.ResultLength(result.E2eMs.Length);
            BatchCodec.WriteResult(response.BodyWriter, result);
            await response.BodyWriter.FlushAsync(httpContext.RequestAborted);
        }
    }

    private static string FirstLine(string text) => text.Split('\n')[0].Trim();

    private static string Name(string value, string what) => LensNames.Ensure(value, what);

    /// <summary>The <c>last</c> query parameter: absent for all, else a whole number in 0..<see cref="DeploymentHealthHistory.MaxLast"/>.</summary>
    private static int? Last(string? text) =>
        text is null ? null
        : int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var k) && k <= DeploymentHealthHistory.MaxLast ? k
        : throw LensException.Validation("last", $"last must be a whole number in 0..{DeploymentHealthHistory.MaxLast}");

    private static IDeploymentGrain DeploymentOf(IGrainFactory grains, string tenant, string device, string deployment) =>
        DeploymentGrains.Get(grains, new DeviceKey(tenant, device).Deployment(Name(deployment, "deployment")));
}
