using System.Net;
using System.Text.Json;
using Lens.Abstractions;
using Lens.Client;
using Lens.Silo;
using Microsoft.Extensions.Logging;

namespace Lens.Service.Tests;

/// <summary><c>GET /v1/devices</c> over loopback: each tenant's own devices, listed from their first deployment on.</summary>
public sealed class DeviceListTests(HttpHostFixture fixture) : IClassFixture<HttpHostFixture>
{
    [Fact]
    public async Task Each_tenant_lists_only_its_own_devices_each_from_its_first_deployment_on()
    {
        var acmeDevice = NewDevice();
        var globexDevice = NewDevice();
        Assert.DoesNotContain(await fixture.Acme.ListDevicesAsync(), d => d.Name == acmeDevice);

        // A read of a device with no deployment does not list it.
        Assert.Empty(await fixture.Acme.ListDeploymentsAsync(acmeDevice));
        Assert.DoesNotContain(await fixture.Acme.ListDevicesAsync(), d => d.Name == acmeDevice);

        await fixture.Acme.CreateDeploymentAsync(acmeDevice, TestModels.Spec("llama"));
        await fixture.Globex.CreateDeploymentAsync(globexDevice, TestModels.Spec("llama"));
        var acme = await fixture.Acme.ListDevicesAsync();
        var globex = await fixture.Globex.ListDevicesAsync();
        Assert.Equal(new DeviceSummary(acmeDevice, 1), Assert.Single(acme, d => d.Name == acmeDevice));
        Assert.Equal(new DeviceSummary(globexDevice, 1), Assert.Single(globex, d => d.Name == globexDevice));
        Assert.DoesNotContain(acme, d => d.Name == globexDevice);
        Assert.DoesNotContain(globex, d => d.Name == acmeDevice);
        Assert.Equal(acme.Select(d => d.Name).Order(StringComparer.Ordinal), acme.Select(d => d.Name));

        // A second deployment counts; the identical spec again, or a refused one, does not.
        await fixture.Acme.CreateDeploymentAsync(acmeDevice, TestModels.Spec("llama"));
        await fixture.Acme.CreateDeploymentAsync(acmeDevice, TestModels.Spec("mistral"));
        await Assert.ThrowsAsync<LensApiException>(() => fixture.Acme.CreateDeploymentAsync(acmeDevice, TestModels.Spec("llama") with { BatchSize = 8 }));
        Assert.Equal(2, Assert.Single(await fixture.Acme.ListDevicesAsync(), d => d.Name == acmeDevice).Deployments);
    }

    [Fact]
    public async Task The_route_needs_a_key_and_answers_json_names_sorted()
    {
        using var missing = await fixture.Http.GetAsync("v1/devices");
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);

        var devices = new[] { "b-" + NewDevice(), "a-" + NewDevice(), "B-" + NewDevice() };
        foreach (var device in devices)
        {
            await fixture.Globex.CreateDeploymentAsync(device, TestModels.Spec("llama"));
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/devices");
        request.Headers.Add("X-Api-Key", HttpHostFixture.GlobexKey);
        using var response = await fixture.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var names = doc.RootElement.EnumerateArray().Select(d => d.GetProperty("name").GetString()!).Where(devices.Contains).ToArray();
        Assert.Equal([devices[2], devices[1], devices[0]], names); // ordinal: upper case first
    }

    [Fact]
    public async Task A_tenant_past_its_device_limit_is_refused_a_new_device_with_409_and_keeps_the_others()
    {
        var options = new LensServerOptions
        {
            SiloPort = TestModels.FreePort(),
            GatewayPort = TestModels.FreePort(),
            HttpPort = 0,
            ServiceId = "lens-devices-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["acme"] = HttpHostFixture.AcmeKey },
            Grains = { MaxDevicesPerTenant = 2 },
        };
        await using var server = await LensHost.StartAsync(options, b => b.Logging.SetMinimumLevel(LogLevel.Warning).QuietExpected());
        using var http = new HttpClient { BaseAddress = server.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        var acme = new LensHttpClient(http, HttpHostFixture.AcmeKey);
        await acme.CreateDeploymentAsync("npu-0", TestModels.Spec("llama"));
        await acme.CreateDeploymentAsync("npu-1", TestModels.Spec("llama"));

        var refused = await Assert.ThrowsAsync<LensApiException>(() => acme.CreateDeploymentAsync("npu-2", TestModels.Spec("llama")));
        Assert.Equal(409, refused.Status);
        Assert.Contains("2 devices", refused.Message, StringComparison.Ordinal);
        Assert.Empty(await acme.ListDeploymentsAsync("npu-2")); // refused before anything was stored

        // Listed devices still take new deployments.
        await acme.CreateDeploymentAsync("npu-1", TestModels.Spec("mistral"));
        Assert.Equal([new DeviceSummary("npu-0", 1), new DeviceSummary("npu-1", 2)], await acme.ListDevicesAsync());
    }

    private static string NewDevice() => "list-" + Guid.NewGuid().ToString("N")[..8];
}
