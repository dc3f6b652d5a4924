using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Grains;
using Microsoft.Extensions.DependencyInjection;

namespace Lens.Service.Tests;

/// <summary>
/// The silos' <see cref="ModelCache"/>s, kept current by the deployment grain's pushes: a change is seen on every silo before the call
/// that made it returns, predictions make no grain call, and a deployment grain that moves takes its subscriptions with it.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ModelPushTests(ClusterFixture fixture)
{
    private readonly LensClusterClient _lens = new(fixture.Client, "acme");

    [Fact]
    public async Task Every_silo_sees_an_import_before_it_returns_and_cached_predictions_ask_no_grain()
    {
        var (device, id, key) = await ProfiledAsync();
        var caches = Caches();
        Assert.Equal(2, caches.Length);
        var version = (await _lens.GetDeploymentAsync(device, id)).ModelVersion;
        Assert.All(await Task.WhenAll(caches.Select(c => c.GetAsync(key).AsTask())), m => Assert.Equal(version, m.Version));

        using var fetches = new FetchCounter(key);
        for (var n = 0; n < 100; n++)
        {
            foreach (var cache in caches)
            {
                Assert.Equal(version, (await cache.GetAsync(key)).Version);
            }

            Assert.Equal(version, (await _lens.PredictAsync(device, id, 100 + n, 1 + n)).ModelVersion);
        }

        Assert.Equal(0, fetches.Count); // 300 predictions, every one from a cache

        // Imported rows that make decode-256 1.5 times slower change the fit; both silos hold the new version when the import returns.
        var source = TestModels.Source();
        var imported = await _lens.ImportMeasurementsAsync(device, id, Slower(source, 1.5));
        Assert.True(imported.ModelVersion > version);
        foreach (var cache in caches)
        {
            var (model, now) = await cache.GetAsync(key);
            Assert.Equal(imported.ModelVersion, now);
            Assert.NotEqual(source.Predict(200, 50).E2eMs, model.Predict(200, 50).E2eMs);
        }

        Assert.Equal(2, fetches.Count); // one fetch per silo after the push, then cached again
        Assert.Equal(imported.ModelVersion, (await _lens.PredictAsync(device, id, 200, 50)).ModelVersion);
        Assert.Equal(2, fetches.Count);
    }

    [Fact]
    public async Task A_deployment_grain_that_moves_to_another_silo_takes_its_subscriptions_along()
    {
        var (device, id, key) = await ProfiledAsync();
        var caches = Caches();
        await Task.WhenAll(caches.Select(c => c.GetAsync(key).AsTask()));

        // Move the deployment grain: its old activation tells the caches it is leaving; they subscribe to the new one on next use.
        var grain = fixture.Client.GetGrain<IDeploymentGrain>(key.Format());
        var from = HostOf(grain);
        var to = fixture.Cluster.Silos.Select(s => s.SiloAddress).Single(s => !s.Equals(from));
        using (var fetches = new FetchCounter(key))
        {
            await fixture.Cluster.MigrateAsync(grain, to).WaitAsync(TimeSpan.FromSeconds(60));
            await TestModels.Until(async () =>
            {
                await Task.WhenAll(caches.Select(c => c.GetAsync(key).AsTask()));
                return fetches.Count >= 2;
            }, "both caches to subscribe to the moved deployment grain", seconds: 30);
            Assert.Equal(to, HostOf(grain));
        }

        var source = TestModels.Source();
        var imported = await _lens.ImportMeasurementsAsync(device, id, Slower(source, 2));
        foreach (var cache in caches)
        {
            Assert.Equal(imported.ModelVersion, (await cache.GetAsync(key)).Version);
        }
    }

    private async Task<(string Device, string Id, DeploymentKey Key)> ProfiledAsync()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var id = (await _lens.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device))).Deployment.Id;
        await _lens.StartProfileAsync(device, id);
        await TestModels.Until(async () => (await _lens.GetProfileProgressAsync(device, id)).IsFinished, "the profile to finish");
        Assert.Equal(ProfileState.Completed, (await _lens.GetProfileProgressAsync(device, id)).State);
        return (device, id, new DeploymentKey("acme", device, id));
    }

    private static MeasurementBatch Slower(DeploymentModel source, double factor) =>
        new([.. new[] { 1, 64, 127 }.Select(o => new MeasurementInput(129, o, source.Predict(129, o).E2eMs * factor, null, "decode-256"))],
            "slower-" + Guid.NewGuid().ToString("N")[..8]);

    private Orleans.Runtime.SiloAddress HostOf(IDeploymentGrain grain) =>
        fixture.Cluster.TryGetGrainContext(grain.GetGrainId(), out var context) ? context.Address.SiloAddress! : throw new InvalidOperationException("not active");

    private ModelCache[] Caches() => [.. fixture.Cluster.Silos.Select(s => s.ServiceProvider.GetRequiredService<ModelCache>())];
}
