using Lens.Abstractions;
using Lens.Client;
using Lens.Silo;
using Microsoft.Extensions.Logging;

namespace Lens.Service.Tests;

/// <summary>One grain per deployment: a device holds many more than the old row's 32, up to its configured bound, over HTTP.</summary>
public sealed class ManyDeploymentsTests
{
    [Fact]
    public async Task A_device_holds_many_deployments_up_to_its_bound_and_refuses_one_more_with_409()
    {
        const int bound = 120; // well past the 32 one device row used to hold
        var options = new LensServerOptions
        {
            SiloPort = TestModels.FreePort(),
            GatewayPort = TestModels.FreePort(),
            HttpPort = 0,
            ServiceId = "lens-many-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["acme"] = HttpHostFixture.AcmeKey },
            Grains = { MaxDeploymentsPerDevice = bound },
        };
        await using var server = await LensHost.StartAsync(options, b => b.Logging.SetMinimumLevel(LogLevel.Warning));
        using var http = new HttpClient { BaseAddress = server.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        var acme = new LensHttpClient(http, HttpHostFixture.AcmeKey);
        var specs = Enumerable.Range(0, bound).Select(n => TestModels.Spec($"m{n:D3}")).ToArray();
        foreach (var batch in specs.Chunk(8))
        {
            await Task.WhenAll(batch.Select(s => acme.CreateDeploymentAsync("npu", s)));
        }

        var listed = await acme.ListDeploymentsAsync("npu");
        Assert.Equal(specs.Select(s => s.DeploymentId).Order(StringComparer.Ordinal), listed.Select(d => d.Id));
        Assert.All(listed, d => Assert.Equal("npu", d.Device));
        Assert.Equal([new DeviceSummary("npu", bound)], await acme.ListDevicesAsync());

        // Each deployment answers alone, with its own spec; the identical spec again is no new deployment.
        var last = await acme.GetDeploymentAsync("npu", specs[^1].DeploymentId);
        Assert.Equal(specs[^1].Name, last.Spec.Name);
        Assert.Equal(listed[^1].CreatedAt, (await acme.CreateDeploymentAsync("npu", specs[^1])).CreatedAt);

        var refused = await Assert.ThrowsAsync<LensApiException>(() => acme.CreateDeploymentAsync("npu", TestModels.Spec("one-more")));
        Assert.Equal(409, refused.Status);
        Assert.Contains($"{bound} deployments", refused.Message, StringComparison.Ordinal);
        Assert.Equal(bound, (await acme.ListDeploymentsAsync("npu")).Length);
        var gone = await Assert.ThrowsAsync<LensApiException>(() => acme.GetDeploymentAsync("npu", TestModels.Spec("one-more").DeploymentId));
        Assert.Equal(404, gone.Status); // refused before it was stored

        // Another device is not limited by this one's count.
        Assert.Equal(TestModels.Spec("one-more").DeploymentId, (await acme.CreateDeploymentAsync("npu-2", TestModels.Spec("one-more"))).Id);
    }
}

/// <summary>The device's profiling queue across its deployments' grains.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DeviceQueueTests(ClusterFixture fixture)
{
    private readonly LensClusterClient _lens = new(fixture.Client, "acme");

    [Fact]
    public async Task Profiles_of_two_deployments_on_one_device_run_one_measurement_at_a_time_in_queue_order()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var control = BackendControl.For(device); // both deployments time their requests on this one device
        control.Delay = TimeSpan.FromMilliseconds(2);
        control.PauseAfter = 0; // held at the first measurement until both runs are queued
        var first = (await _lens.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device))).Deployment.Id;
        var second = (await _lens.CreateDeploymentAsync(device, TestModels.Spec("mistral", control: device))).Deployment.Id;
        await _lens.StartProfileAsync(device, first);
        await TestModels.Until(() => Task.FromResult(control.Paused), "the first run's first measurement");
        Assert.Equal(ProfileState.Queued, (await _lens.StartProfileAsync(device, second)).State);
        Assert.Equal(ProfileState.Running, (await _lens.GetProfileProgressAsync(device, first)).State);
        Assert.Equal(ProfileState.Queued, (await _lens.GetProfileProgressAsync(device, second)).State);
        control.PauseAfter = null;

        ProfileProgress a = null!, b = null!;
        await TestModels.Until(async () => (a = await _lens.GetProfileProgressAsync(device, first)).IsFinished &&
                                           (b = await _lens.GetProfileProgressAsync(device, second)).IsFinished, "both profiles");
        Assert.Equal((ProfileState.Completed, ProfileState.Completed), (a.State, b.State));
        Assert.Equal(1, control.MaxInFlight); // never two measurements on the device at once
        Assert.Equal(a.Total + b.Total, control.Measured);
        Assert.True(b.StartedAt >= a.FinishedAt, $"second started {b.StartedAt:O}, first finished {a.FinishedAt:O}");
        TestModels.AssertSameModel(TestModels.Source(), await _lens.GetModelJsonAsync(device, first));
        TestModels.AssertSameModel(TestModels.Source(), await _lens.GetModelJsonAsync(device, second));
    }
}
