using System.Security.Claims;
using Bunit;
using Lens.Abstractions;
using Lens.Client;
using Lens.Grains;
using Lens.Silo;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lens.WebConsole.Tests;

/// <summary>
/// A real LENS server for bUnit page tests: the page's cluster client is the silo's own, so every page action reaches the real grains
/// (and their limits: <see cref="MaxSimulateRequests"/> is small). Holds one deployment of the console's default spec on
/// <see cref="Device"/>, fitted from imported measurements of <see cref="Models.Tiny"/> (no profiling run).
/// </summary>
public sealed class PageHost : IAsyncLifetime
{
    public const string Tenant = "acme";
    public const string Key = "acme-page-key-0123456789";
    public const string Device = "cpu-0"; // the what-if page's default device
    public const int MaxSimulateRequests = 50;

    public LensServer Server { get; private set; } = null!;

    public string Deployment { get; private set; } = "";

    public DeploymentSpec Spec { get; } = new DeploymentForm().ToSpec(out _)!;

    public async Task InitializeAsync()
    {
        var options = new LensServerOptions
        {
            SiloPort = ConsoleHost.FreePort(),
            GatewayPort = ConsoleHost.FreePort(),
            HttpPort = 0,
            ServiceId = "lens-pages-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { [Tenant] = Key },
            Grains = { MaxSimulateRequests = MaxSimulateRequests },
        };
        Server = await LensHost.StartAsync(options, b =>
        {
            b.Logging.SetMinimumLevel(LogLevel.Warning);
            // The setting as the grains read it, whether or not the host copies it from the server options (issue 17, item 1).
            b.Services.Configure<LensGrainOptions>(o => o.MaxSimulateRequests = MaxSimulateRequests);
        });

        Deployment = await FittedAsync(Device);
    }

    /// <summary>A new deployment of <see cref="Spec"/> on <paramref name="device"/>, fitted from <see cref="Models.Tiny"/>'s latencies.</summary>
    public async Task<string> FittedAsync(string device)
    {
        var lens = new LensClusterClient(Server.Client, Tenant);
        var id = (await lens.CreateDeploymentAsync(device, Spec)).Deployment.Id;
        var model = Models.Tiny();
        await lens.ImportMeasurementsAsync(device, id, new MeasurementBatch([.. Spec.CreatePlan().Rows.Select(r =>
        {
            var p = model.Predict(r.InputLength, r.OutputLength);
            return new MeasurementInput(r.InputLength, r.OutputLength, p.E2eMs, p.TtftMs);
        })], "page-host"));
        return (await lens.GetDeploymentAsync(device, id)).ModelVersion > 0
            ? id
            : throw new InvalidOperationException("the imported measurements did not fit the deployment");
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();

    /// <summary>Gives <paramref name="context"/> this server's cluster client, the tenant's signed-in session and a renderer.</summary>
    /// <param name="interactive">Rendered in a circuit (handlers attached), or prerendered (static HTML).</param>
    public void Serve(BunitContext context, bool interactive)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Services.AddSingleton(Server.Client);
        var auth = context.AddAuthorization();
        auth.SetAuthorized(Tenant);
        auth.SetClaims(new Claim(ConsoleSignIn.TenantClaim, Tenant));
        context.SetRendererInfo(new RendererInfo(interactive ? "Server" : "Static", interactive));
    }
}
