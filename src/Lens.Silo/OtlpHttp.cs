using System.IO.Compression;
using Google.Protobuf;
using Lens.Otlp;
using Lens.Otlp.Proto;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Lens.Silo;

/// <summary>
/// OTLP/HTTP trace intake, <c>POST /v1/traces</c> (the path OTLP exporters use), under the <c>/v1</c> group's tenant authentication
/// (<c>X-Api-Key</c>, which exporters send with <c>OTEL_EXPORTER_OTLP_HEADERS=x-api-key=...</c>). Bodies: <c>application/x-protobuf</c>
/// or <c>application/json</c>, optionally <c>Content-Encoding: gzip</c>. Bounded by <see cref="LensOtlpOptions"/>: the body as sent
/// (413), the body decompressed (413, decompression stops there), the spans (400). A body that is not an export is a 400 problem with
/// the reason and changes nothing. The answer is an <c>ExportTraceServiceResponse</c> in the request's encoding, whose
/// <c>partial_success</c> counts the spans refused (unrouted, invalid, naming no deployment of the tenant) with the first reason.
/// </summary>
internal static class OtlpHttp
{
    public const string Protobuf = "application/x-protobuf";
    public const string Json = "application/json";

    public static void MapOtlpTraces(this RouteGroupBuilder v1) =>
        // No Accepts metadata: routing would answer a wrong Content-Type 415 without saying why; the handler names the allowed types.
        v1.MapPost("/traces", (Func<HttpContext, Task<IResult>>)ExportAsync)
            .Produces<byte[]>(200, Protobuf, Json).ProducesProblem(400).ProducesProblem(413).ProducesProblem(415)
            .WithName("ExportTraces")
            .WithSummary("OTLP/HTTP trace export: LLM request spans of the tenant's deployments (resource attributes lens.device, lens.deployment)");

    private static async Task<IResult> ExportAsync(HttpContext http)
    {
        var tenant = (string)http.Items[LensApi.TenantItem]!;
        var limits = http.RequestServices.GetRequiredService<LensServerOptions>().Otlp;
        var type = http.Request.ContentType?.Split(';')[0].Trim();
        var json = string.Equals(type, Json, StringComparison.OrdinalIgnoreCase);
        if (!json && !string.Equals(type, Protobuf, StringComparison.OrdinalIgnoreCase))
        {
            return Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported body", $"Content-Type must be {Protobuf} or {Json}; got '{type}'");
        }

        var encoding = http.Request.Headers.ContentEncoding.ToString().Trim();
        var gzip = string.Equals(encoding, "gzip", StringComparison.OrdinalIgnoreCase);
        if (!gzip && encoding.Length > 0 && !string.Equals(encoding, "identity", StringComparison.OrdinalIgnoreCase))
        {
            return Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported encoding", $"Content-Encoding must be gzip or identity; got '{encoding}'");
        }

        if (http.Request.ContentLength > limits.MaxBodyBytes)
        {
            return TooLarge("body", limits.MaxBodyBytes);
        }

        try
        {
            var body = await ReadBoundedAsync(http.Request.Body, limits.MaxBodyBytes, http.RequestAborted);
            if (body is null)
            {
                return TooLarge("body", limits.MaxBodyBytes);
            }

            if (gzip)
            {
                try
                {
                    await using var inflater = new GZipStream(new MemoryStream(body), CompressionMode.Decompress);
                    body = await ReadBoundedAsync(inflater, limits.MaxDecompressedBytes, http.RequestAborted);
                }
                catch (InvalidDataException ex)
                {
                    return Problem(StatusCodes.Status400BadRequest, "Malformed body", $"the body is not valid gzip: {ex.Message}");
                }

                if (body is null)
                {
                    return TooLarge("decompressed body", limits.MaxDecompressedBytes);
                }
            }

            var intake = json ? OtlpTraces.FromJson(body, limits.MaxSpansPerRequest) : OtlpTraces.FromProtobuf(body, limits.MaxSpansPerRequest);
            var (rejected, problem) = await OtlpRouting.DeliverAsync(http.RequestServices.GetRequiredService<IGrainFactory>(), tenant, intake);
            var response = new ExportTraceServiceResponse();
            if (rejected > 0)
            {
                response.PartialSuccess = new ExportTracePartialSuccess { RejectedSpans = rejected, ErrorMessage = problem ?? "" };
            }

            return json
                ? Results.Text(JsonFormatter.Default.Format(response), Json)
                : Results.Bytes(response.ToByteArray(), Protobuf);
        }
        catch (OtlpFormatException ex)
        {
            return Problem(StatusCodes.Status400BadRequest, "Malformed body", ex.Message);
        }
        catch (Exception ex) when (ApiFailures.Classify(http, ex) is { } failure)
        {
            return failure;
        }
    }

    /// <summary>The whole stream, or null as soon as it holds more than <paramref name="limit"/> bytes (never buffering more).</summary>
    private static async Task<byte[]?> ReadBoundedAsync(Stream source, int limit, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await source.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    private static IResult TooLarge(string what, int limit) =>
        Problem(StatusCodes.Status413PayloadTooLarge, "Body too large", $"the {what} is larger than {limit} bytes (Lens:Otlp; send smaller batches)");

    private static IResult Problem(int status, string title, string detail) => Results.Problem(detail, statusCode: status, title: title);
}
