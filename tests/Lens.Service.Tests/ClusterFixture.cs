using Lens.Grains;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace Lens.Service.Tests;

/// <summary>An in-process Orleans test cluster of two silos with in-memory storage and reminders and the controlled backends.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public InProcessTestCluster Cluster { get; private set; } = null!;

    public IClusterClient Client => Cluster.Client;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) => ConfigureSilo(silo));
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    /// <summary>The LENS grains with in-memory storage and reminders and the controlled backends; <paramref name="grains"/> adjusts options.</summary>
    public static void ConfigureSilo(ISiloBuilder silo, Action<LensGrainOptions>? grains = null)
    {
        silo.AddLensGrains(o =>
        {
            o.InitialBackoff = TimeSpan.FromMilliseconds(5);
            grains?.Invoke(o);
        });
        silo.AddMemoryGrainStorage(LensGrainOptions.StorageName);
        silo.UseInMemoryReminderService();
        silo.Services.AddSingleton<IMeasurementBackendFactory, ControlledBackendFactory>();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
