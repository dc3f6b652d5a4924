using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Lens.Grains;

/// <summary>Registers what the LENS grains need in a silo (storage and reminders are the host's choice).</summary>
public static class LensGrainsExtensions
{
    /// <summary>
    /// Adds <see cref="LensGrainOptions"/>, the default <see cref="IMeasurementBackendFactory"/> and <see cref="TenantBackends"/>
    /// (<see cref="TenantBackends.None"/>) unless registered already,
    /// and <see cref="TimeProvider.System"/> (unless one is registered). The silo must also have a grain storage named
    /// <see cref="LensGrainOptions.StorageName"/> and a reminder service.
    /// </summary>
    public static ISiloBuilder AddLensGrains(this ISiloBuilder builder, Action<LensGrainOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<LensGrainOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.Validate(o =>
        {
            o.Validate();
            return true;
        });
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton(TenantBackends.None);
        builder.Services.TryAddSingleton<IMeasurementBackendFactory, MeasurementBackendFactory>();
        builder.Services.AddSingleton<ModelCache>();
        builder.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ModelCache>());
        return builder;
    }
}
