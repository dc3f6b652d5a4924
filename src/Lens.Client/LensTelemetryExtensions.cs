using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Lens.Client;

/// <summary>
/// OpenTelemetry for LENS processes (architecture.md, "Observability"), shared by the silo host and by applications that host an
/// Orleans client: Orleans' meter <c>Microsoft.Orleans</c>, its activity sources <c>Microsoft.Orleans.Runtime</c> and
/// <c>Microsoft.Orleans.Application</c>, and the project's meter and activity source <c>Lens</c>; OTLP export when an endpoint is
/// given. Call <c>AddActivityPropagation()</c> on the silo or client builder as well (see <see cref="UseLensTelemetry"/>), so that a
/// caller's span and its grain calls form one trace.
/// </summary>
public static class LensTelemetryExtensions
{
    /// <summary>Name of the project's meter and activity source.</summary>
    public const string LensName = "Lens";

    /// <summary>Orleans' meter.</summary>
    public const string OrleansMeter = "Microsoft.Orleans";

    /// <summary>Orleans' activity sources: spans of runtime code and of application grain calls.</summary>
    public static readonly IReadOnlyList<string> OrleansActivitySources = ["Microsoft.Orleans.Runtime", "Microsoft.Orleans.Application"];

    /// <summary>
    /// Adds OpenTelemetry metrics and tracing for Orleans and LENS to <paramref name="services"/>. With <paramref name="otlpEndpoint"/>
    /// (e.g. <c>http://127.0.0.1:4317</c>, gRPC) both signals are exported by OTLP; without it nothing is exported unless the
    /// caller adds exporters to the returned builder (the silo adds its Prometheus scrape endpoint).
    /// </summary>
    public static OpenTelemetryBuilder AddLensTelemetry(this IServiceCollection services, Uri? otlpEndpoint = null, string serviceName = "lens")
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName))
            .WithMetrics(m =>
            {
                m.AddMeter(OrleansMeter, LensName);
                if (otlpEndpoint is not null)
                {
                    m.AddOtlpExporter(o => o.Endpoint = otlpEndpoint);
                }
            })
            .WithTracing(t =>
            {
                t.AddSource([.. OrleansActivitySources, LensName]);
                if (otlpEndpoint is not null)
                {
                    t.AddOtlpExporter(o => o.Endpoint = otlpEndpoint);
                }
            });
        return builder;
    }

    /// <summary>
    /// Orleans client side: propagates the current activity through grain calls (<c>AddActivityPropagation</c>), so that the
    /// silo's grain spans join the caller's trace. Pair it with <see cref="AddLensTelemetry"/> on the host's services.
    /// </summary>
    public static IClientBuilder UseLensTelemetry(this IClientBuilder client)
    {
        ArgumentNullException.ThrowIfNull(client);
        return client.AddActivityPropagation();
    }

    /// <summary>Whether <paramref name="text"/> is a usable OTLP endpoint (absolute http or https).</summary>
    public static bool IsValidOtlpEndpoint(string? text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);
}
