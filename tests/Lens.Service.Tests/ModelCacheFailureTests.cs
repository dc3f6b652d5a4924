using Lens.Abstractions;
using Lens.Client;
using Lens.Grains;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Orleans.TestingHost;
using Xunit.Abstractions;

namespace Lens.Service.Tests;

/// <summary>
/// What ends a model cache's subscription when no push can say so: the silo of the deployment grain dying (the cache's membership view
/// drops it, long before the lease) and the lease itself. Each test builds a cluster of its own.
/// </summary>
public sealed class ModelCacheFailureTests(ITestOutputHelper output)
{
    private static readonly TimeSpan StepLimit = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_cache_forgets_models_whose_deployment_silo_died_without_waiting_for_the_lease()
    {
        await using var cluster = await StartAsync(silos: 3, lease: TimeSpan.FromHours(1));
        var (key, _) = await ProfiledAsync(cluster);

        // The deployment grain on a silo that is not the first (the test cluster's client and membership stay up), then that silo killed.
        var device = cluster.Client.GetGrain<IDeploymentGrain>(key.Format());
        var doomed = cluster.Silos[1];
        bool OnDoomed() => cluster.TryGetGrainContext(device.GetGrainId(), out var c) && c.Address.SiloAddress!.Equals(doomed.SiloAddress);
        if (!OnDoomed())
        {
            // (Migrating a grain to the silo it is on never completes: the test cluster waits for a move that does not happen.)
            await Step("migrate", cluster.MigrateAsync(device, doomed.SiloAddress));
        }

        await TestModels.Until(() => Task.FromResult(OnDoomed()), "the deployment grain to move", seconds: 30);
        var survivors = new[] { cluster.Silos[0], cluster.Silos[2] }.Select(s => s.ServiceProvider.GetRequiredService<ModelCache>()).ToArray();
        foreach (var cache in survivors)
        {
            await Step("fetch", cache.GetAsync(key).AsTask());
            Assert.True(cache.Holds(key));
        }

        await Step("kill", cluster.KillSiloAsync(doomed)); // no deactivation, no goodbye
        await TestModels.Until(() => Task.FromResult(survivors.All(c => !c.Holds(key))),
            "the surviving silos' caches to drop the dead silo's subscription", seconds: 45);
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} dropped");
    }

    [Fact]
    public async Task A_subscription_is_renewed_when_its_lease_runs_out()
    {
        var clock = new FakeTimeProvider();
        await using var cluster = await StartAsync(silos: 1, lease: TimeSpan.FromMinutes(1), clock);
        var (key, version) = await ProfiledAsync(cluster);
        var cache = cluster.Silos[0].ServiceProvider.GetRequiredService<ModelCache>();
        using var fetches = new FetchCounter(key);
        Assert.Equal(version, (await cache.GetAsync(key)).Version);
        Assert.Equal(1, fetches.Count);

        clock.Advance(TimeSpan.FromSeconds(59)); // within the lease: served from the cache
        Assert.Equal(version, (await cache.GetAsync(key)).Version);
        Assert.Equal(1, fetches.Count);

        clock.Advance(TimeSpan.FromSeconds(1)); // the lease has run out: renewed with the device grain
        Assert.Equal(version, (await cache.GetAsync(key)).Version);
        Assert.Equal(2, fetches.Count);
        Assert.Equal(version, (await cache.GetAsync(key)).Version);
        Assert.Equal(2, fetches.Count);
    }

    private async Task Step(string what, Task task)
    {
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {what}");
        await task.WaitAsync(StepLimit);
    }

    /// <param name="clock">The model cache's clock (only the cache's: profiling and the grains keep the real one).</param>
    private static async Task<InProcessTestCluster> StartAsync(short silos, TimeSpan lease, TimeProvider? clock = null)
    {
        var builder = new InProcessTestClusterBuilder(silos);
        builder.ConfigureSilo((_, silo) =>
        {
            ClusterFixture.ConfigureSilo(silo, o => o.ModelLease = lease);
            if (clock is not null)
            {
                silo.Services.AddSingleton(sp => ActivatorUtilities.CreateInstance<ModelCache>(sp, clock));
            }
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    private static async Task<(DeploymentKey Key, long Version)> ProfiledAsync(InProcessTestCluster cluster)
    {
        var lens = new LensClusterClient(cluster.Client, "acme");
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var id = (await lens.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device))).Deployment.Id;
        await lens.StartProfileAsync(device, id);
        await TestModels.Until(async () => (await lens.GetProfileProgressAsync(device, id)).IsFinished, "the profile to finish");
        return (new DeploymentKey("acme", device, id), (await lens.GetDeploymentAsync(device, id)).ModelVersion);
    }
}
