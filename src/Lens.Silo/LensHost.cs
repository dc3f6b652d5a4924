using System.Net;
using Azure.Data.Tables;
using Lens.Abstractions;
using Lens.Client;
using Lens.WebConsole;
using Lens.Grains;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Orleans.Configuration;
using Orleans.Dashboard;

namespace Lens.Silo;

/// <summary>
/// Builds and runs a LENS server: an Orleans silo (grains of <c>Lens.Grains</c>) with the HTTP API (<see cref="LensApi"/>) and
/// its OpenAPI document at <c>/openapi/v1.json</c>, in one process.
/// <list type="bullet">
/// <item><see cref="RunAsync"/>: run until the token fires (what <c>lens serve</c> calls).</item>
/// <item><see cref="StartAsync"/>: start and return a <see cref="LensServer"/> handle (tests, embedding).</item>
/// <item><see cref="CreateBuilder"/> / <see cref="Build"/>: the builder and application, for further configuration.</item>
/// </list>
/// </summary>
public static class LensHost
{
    /// <summary>Runs a server until <paramref name="cancellationToken"/> fires; settings are validated first.</summary>
    public static async Task RunAsync(LensServerOptions options, CancellationToken cancellationToken)
    {
        await using var server = await StartAsync(options, configure: null, cancellationToken);

        // SIGTERM (docker stop, Kubernetes) reaches the host's lifetime, not the caller's token: stop on either.
        var lifetime = server.Services.GetRequiredService<IHostApplicationLifetime>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException)
        {
            // asked to stop
        }

        await server.StopAsync(CancellationToken.None);
    }

    /// <summary>Starts a server and returns once the silo and the HTTP listener are up.</summary>
    /// <param name="configure">Last say over the builder (e.g. replace <see cref="IMeasurementBackendFactory"/>, logging).</param>
    public static async Task<LensServer> StartAsync(LensServerOptions options, Action<WebApplicationBuilder>? configure = null,
        CancellationToken cancellationToken = default)
    {
        var app = Build(options, configure);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses
                          .FirstOrDefault(a => options.Otlp.GrpcPort == 0 || !a.EndsWith($":{options.Otlp.GrpcPort}", StringComparison.Ordinal))
                      ?? throw new InvalidOperationException("the HTTP server reported no address");
        return new LensServer(app, new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)));
    }

    /// <summary>The configured application, not started.</summary>
    public static WebApplication Build(LensServerOptions options, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = CreateBuilder(options);
        configure?.Invoke(builder);
        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        OperatorGate.Use(app, options);
        app.MapOpenApi();
        app.MapLensApi();
        OtlpGrpc.Map(app, options);
        app.MapLensConsole();
        if (options.MetricsPath is { Length: > 0 } metrics)
        {
            app.MapPrometheusScrapingEndpoint(metrics);
        }

        if (options.DashboardPath is { Length: > 0 } dashboard)
        {
            app.MapOrleansDashboard(routePrefix: dashboard);
        }

        return app;
    }

    /// <summary>A builder with the silo, the API's services and Kestrel set up from <paramref name="options"/> (validated here).</summary>
    public static WebApplicationBuilder CreateBuilder(LensServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        var tenants = new Dictionary<string, string>(options.Tenants, StringComparer.Ordinal);
        LensServerOptions.AddTenants(tenants, builder.Configuration);
        options.Tenants = tenants;
        var backends = options.TenantBackends.ToDictionary(t => t.Key, t => new Dictionary<string, LensBackendOptions>(t.Value, StringComparer.Ordinal),
            StringComparer.Ordinal);
        LensServerOptions.AddTenantBackends(backends, builder.Configuration);
        options.TenantBackends = backends;
        options.Validate();

        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Parse(options.HttpAddress), options.HttpPort));
        OtlpGrpc.Add(builder, options);
        // Orleans and its resilience pipelines log every placement and retry at Information: keep the console for what matters.
        builder.Logging.AddFilter("Orleans", LogLevel.Warning);
        builder.Logging.AddFilter("Polly", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.AddSingleton(options);
        var tenantResolver = new TenantResolver(tenants);
        builder.Services.AddSingleton(tenantResolver);
        builder.Services.AddSingleton(sp => new AuthFailures(options.AuthFailureLimit, options.AuthFailureWindow,
            sp.GetService<TimeProvider>() ?? TimeProvider.System, sp.GetRequiredService<ILogger<AuthFailures>>()));
        builder.Services.AddLensConsole(tenantResolver.Resolve);
        builder.Services.AddProblemDetails();
        builder.Services.AddOpenApi(o => o.AddDocumentTransformer(ApiKeySecurity.TransformAsync));
        builder.Services.Configure<JsonOptions>(o => LensJson.Configure(o.SerializerOptions));
        AddTelemetry(builder.Services, options);
        builder.UseOrleans(silo => ConfigureSilo(silo, options));
        return builder;
    }

    /// <summary>
    /// OpenTelemetry of the silo host: Orleans' and LENS' meters and activity sources (<see cref="LensTelemetryExtensions.AddLensTelemetry"/>),
    /// ASP.NET Core's HTTP spans and metrics, the Prometheus scrape endpoint (<see cref="LensServerOptions.MetricsPath"/>, on by
    /// default) and OTLP export (<see cref="LensServerOptions.OtlpEndpoint"/>, off unless set).
    /// </summary>
    private static void AddTelemetry(IServiceCollection services, LensServerOptions options)
    {
        var errors = new List<string>();
        if (options.OtlpEndpoint is { Length: > 0 } otlp && !LensTelemetryExtensions.IsValidOtlpEndpoint(otlp))
        {
            errors.Add($"Lens:OtlpEndpoint '{otlp}' is not an absolute http(s) URL such as http://127.0.0.1:4317");
        }

        foreach (var (name, path) in new[] { ("MetricsPath", options.MetricsPath), ("DashboardPath", options.DashboardPath) })
        {
            if (path is { Length: > 0 } && (path[0] != '/' || path.Length == 1 || path.StartsWith("/v1", StringComparison.Ordinal)))
            {
                errors.Add($"Lens:{name} '{path}' must start with '/', name a path, and stay outside /v1 (e.g. /metrics)");
            }
        }

        if (errors.Count > 0)
        {
            throw new LensConfigurationException("invalid LENS server settings:\n  - " + string.Join("\n  - ", errors));
        }

        var endpoint = options.OtlpEndpoint is { Length: > 0 } text ? new Uri(text) : null;
        services.AddLensTelemetry(endpoint, "lens-silo")
            .WithMetrics(m =>
            {
                m.AddAspNetCoreInstrumentation();
                if (!options.Metrics.TenantLabels)
                {
                    // Sum every LENS instrument over tenants, devices and deployments: only what the operator opts into names them.
                    m.AddView(i => i.Meter.Name == LensTelemetry.Name
                        ? new MetricStreamConfiguration { TagKeys = [LensTelemetry.BucketTag, LensTelemetry.ReasonTag, LensTelemetry.SourceTag] }
                        : null);
                }

                if (options.MetricsPath is { Length: > 0 })
                {
                    m.AddPrometheusExporter();
                }
            })
            .WithTracing(t => t.AddAspNetCoreInstrumentation());
    }

    /// <summary>The silo part alone: clustering, storage and reminders by <see cref="LensServerOptions.Storage"/>, and the grains.</summary>
    public static void ConfigureSilo(ISiloBuilder silo, LensServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentNullException.ThrowIfNull(options);
        silo.Services.AddSingleton(options.ToTenantBackends());
        silo.Services.AddSingleton<IMeasurementBackendFactory>(sp => new MeasurementBackendFactory(sp.GetRequiredService<ILoggerFactory>(),
            sp.GetRequiredService<TenantBackends>())
        {
            ReferenceFactory = name => ReferenceBackends.Create(name, options.EngineProfileDirectory),
        });
        // The bound Lens:Grains object itself is the grains' IOptions value (validated again when the silo starts): no setting is
        // copied by hand, so none can be forgotten (MaxSimulateRequests and MaxAdviseRequests once were).
        silo.AddLensGrains(options.Grains);
        silo.AddActivityPropagation(); // an HTTP request's span and its grain calls form one trace
        if (options.DashboardPath is { Length: > 0 })
        {
            silo.AddDashboard();
        }

        if (options.Grains.ResumeCheckPeriod < TimeSpan.FromMinutes(1))
        {
            silo.Configure<ReminderOptions>(o => o.MinimumReminderPeriod = options.Grains.ResumeCheckPeriod);
        }
        switch (options.Storage)
        {
            case LensStorageMode.Embedded:
                silo.UseLocalhostClustering(options.SiloPort, options.GatewayPort, serviceId: options.ServiceId, clusterId: options.ClusterId);
                silo.AddMemoryGrainStorage(LensGrainOptions.StorageName);
                silo.UseInMemoryReminderService();
                break;
            case LensStorageMode.AzureTable:
                var connection = options.AzureStorageConnectionString!;
                var prefix = options.TablePrefix;
                silo.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = options.ClusterId;
                    o.ServiceId = options.ServiceId;
                });
                silo.ConfigureEndpoints(IPAddress.Parse(options.SiloAddress), options.SiloPort, options.GatewayPort, listenOnAnyHostAddress: false);
                silo.UseAzureStorageClustering(o =>
                {
                    o.TableServiceClient = new TableServiceClient(connection);
                    o.TableName = prefix + "cluster";
                });
                silo.AddAzureTableGrainStorage(LensGrainOptions.StorageName, o =>
                {
                    o.TableServiceClient = new TableServiceClient(connection);
                    o.TableName = prefix + "grains";
                });
                silo.UseAzureTableReminderService(o =>
                {
                    o.TableServiceClient = new TableServiceClient(connection);
                    o.TableName = prefix + "reminders";
                });
                break;
            default:
                throw new LensConfigurationException($"storage mode {options.Storage} is not supported");
        }
    }
}

/// <summary>A started LENS server. Dispose (or <see cref="StopAsync"/>) to stop the silo and the HTTP listener.</summary>
public sealed class LensServer(WebApplication app, Uri httpAddress) : IAsyncDisposable
{
    private int _stopped;

    /// <summary>Where the HTTP API listens, e.g. <c>http://127.0.0.1:5080/</c>.</summary>
    public Uri HttpAddress { get; } = httpAddress;

    public IServiceProvider Services => app.Services;

    /// <summary>The silo's own cluster client (for in-process callers and tests).</summary>
    public IClusterClient Client => app.Services.GetRequiredService<IClusterClient>();

    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            await app.StopAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await app.DisposeAsync();
    }
}
