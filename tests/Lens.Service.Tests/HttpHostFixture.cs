using System.Net;
using Lens.Client;
using Lens.Grains;
using Lens.Silo;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lens.Service.Tests;

/// <summary>
/// A real embedded LENS server (silo + Kestrel on a free loopback port) with two tenants, and HTTP clients for both. A subclass may
/// change the grain settings (<see cref="ConfigureGrains"/>) for the tests of an operator setting.
/// </summary>
public class HttpHostFixture : IAsyncLifetime
{
    public const string AcmeKey = "acme-key-0123456789abcdef";
    public const string GlobexKey = "globex-key-0123456789abcdef";
    public const string OperatorKey = "operator-key-0123456789abcdef";

    public LensServer Server { get; private set; } = null!;

    /// <summary>Port of the OTLP/gRPC intake (<c>Lens:Otlp:GrpcPort</c>).</summary>
    public int GrpcPort { get; } = TestModels.FreePort();

    public HttpClient Http { get; private set; } = null!;

    public LensHttpClient Acme { get; private set; } = null!;

    public LensHttpClient Globex { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var options = new LensServerOptions
        {
            SiloPort = TestModels.FreePort(),
            GatewayPort = TestModels.FreePort(),
            HttpPort = 0,
            ServiceId = "lens-http-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["acme"] = AcmeKey, ["globex"] = GlobexKey },
            OperatorApiKey = OperatorKey,
            Otlp = { GrpcPort = GrpcPort }, // the OTLP tests export over gRPC too
            Metrics = { TenantLabels = true }, // the metrics tests look for their own deployment's series
            Grains = { HealthHistoryLength = 5, TrafficWindow = OtlpTrafficTests.Window }, // the health-history tests see the ring wrap; OTLP windows stay small
        };
        ConfigureGrains(options.Grains);
        Server = await LensHost.StartAsync(options, b =>
        {
            b.Logging.SetMinimumLevel(LogLevel.Warning).QuietExpected();
            // Wrap the silo's own factory, so that replay backends are under the tests' control and the other kinds stay real.
            var silos = b.Services.Last(d => d.ServiceType == typeof(IMeasurementBackendFactory));
            b.Services.AddSingleton<IMeasurementBackendFactory>(sp =>
                new ControlledBackendFactory { Fallback = (IMeasurementBackendFactory)silos.ImplementationFactory!(sp) });
        });
        Http = new HttpClient { BaseAddress = Server.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        Acme = new LensHttpClient(Http, AcmeKey);
        Globex = new LensHttpClient(Http, GlobexKey);
    }

    /// <summary>
    /// The operator's <c>/metrics</c> scrape once <paramref name="ready"/> holds for it: the exporter caches a scrape briefly, so it is
    /// polled (bounded, 20 s).
    /// </summary>
    public async Task<string> MetricsWhenAsync(Func<string, bool> ready, string what)
    {
        var text = "";
        await TestModels.Until(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "metrics");
            request.Headers.Add("X-Api-Key", OperatorKey);
            using var response = await Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            text = await response.Content.ReadAsStringAsync();
            return ready(text);
        }, what, seconds: 20);
        return text;
    }

    /// <summary>Changes the test host's grain settings before it starts (none here).</summary>
    protected virtual void ConfigureGrains(LensGrainOptions grains)
    {
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }
}
