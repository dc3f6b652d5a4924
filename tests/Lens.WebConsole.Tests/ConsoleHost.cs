using System.Net;
using System.Net.Sockets;
using Lens.Silo;
using Microsoft.Extensions.Logging;

namespace Lens.WebConsole.Tests;

/// <summary>A real LENS server (silo, HTTP API and console) on free loopback ports, with two tenants.</summary>
public sealed class ConsoleHost : IAsyncLifetime
{
    public const string AcmeKey = "acme-console-key-0123456789";
    public const string GlobexKey = "globex-console-key-0123456789";

    public LensServer Server { get; private set; } = null!;

    public Uri Url(string path) => new(Server.HttpAddress, path);

    public async Task InitializeAsync()
    {
        var options = new LensServerOptions
        {
            SiloPort = FreePort(),
            GatewayPort = FreePort(),
            HttpPort = 0,
            ServiceId = "lens-console-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["acme"] = AcmeKey, ["globex"] = GlobexKey },
            Grains = { TrafficWindow = ConsoleBrowserTests.TrafficWindow }, // one small window of OTLP spans fills the traffic heatmap
        };
        Server = await LensHost.StartAsync(options, b => b.Logging.SetMinimumLevel(LogLevel.Warning));
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
