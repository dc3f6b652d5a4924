using System.Net;
using Grpc.Core;
using Lens.Otlp;
using Lens.Otlp.Proto;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Lens.Silo;

/// <summary>
/// OTLP/gRPC trace intake, <c>opentelemetry.proto.collector.trace.v1.TraceService/Export</c>, on its own port
/// (<see cref="LensOtlpOptions.GrpcPort"/>, HTTP/2 cleartext; 0: off). The tenant comes from the <c>x-api-key</c> metadata (what
/// <c>OTEL_EXPORTER_OTLP_HEADERS=x-api-key=...</c> sends); limits and routing are the HTTP intake's: the message as received after
/// decompression is bounded by <see cref="LensOtlpOptions.MaxDecompressedBytes"/> (gRPC refuses a longer one, ResourceExhausted), the
/// spans by <see cref="LensOtlpOptions.MaxSpansPerRequest"/> (InvalidArgument, nothing used), and spans go to the tenant's deployments
/// only (<see cref="OtlpRouting"/>).
/// </summary>
internal sealed class OtlpGrpcService(IGrainFactory grains, TenantResolver tenants, LensServerOptions options) : TraceService.TraceServiceBase
{
    public override async Task<ExportTraceServiceResponse> Export(ExportTraceServiceRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var keys = context.RequestHeaders.Where(h => string.Equals(h.Key, "x-api-key", StringComparison.OrdinalIgnoreCase)).ToArray();
        var tenant = keys.Length == 1 && !keys[0].IsBinary ? tenants.Resolve(keys[0].Value) : null;
        if (tenant is null)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated,
                keys.Length == 0 ? "send the tenant's API key in the x-api-key metadata" : "the x-api-key metadata does not hold a valid API key"));
        }

        OtlpIntake intake;
        try
        {
            intake = OtlpTraces.From(request, options.Otlp.MaxSpansPerRequest);
        }
        catch (OtlpFormatException ex)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, ex.Message));
        }

        var (rejected, problem) = await OtlpRouting.DeliverAsync(grains, tenant, intake);
        var response = new ExportTraceServiceResponse();
        if (rejected > 0)
        {
            response.PartialSuccess = new ExportTracePartialSuccess { RejectedSpans = rejected, ErrorMessage = problem ?? "" };
        }

        return response;
    }
}

/// <summary>Wiring of the OTLP/gRPC intake into the host (nothing when <see cref="LensOtlpOptions.GrpcPort"/> is 0).</summary>
internal static class OtlpGrpc
{
    public static void Add(WebApplicationBuilder builder, LensServerOptions options)
    {
        if (options.Otlp.GrpcPort == 0)
        {
            return;
        }

        builder.WebHost.ConfigureKestrel(k =>
            k.Listen(IPAddress.Parse(options.HttpAddress), options.Otlp.GrpcPort, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = options.Otlp.MaxDecompressedBytes;
            o.MaxSendMessageSize = 64 * 1024;
            o.EnableDetailedErrors = false;
        });
    }

    public static void Map(WebApplication app, LensServerOptions options)
    {
        if (options.Otlp.GrpcPort != 0)
        {
            app.MapGrpcService<OtlpGrpcService>().RequireHost($"*:{options.Otlp.GrpcPort}");
        }
    }
}
