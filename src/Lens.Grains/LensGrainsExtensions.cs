using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>Registers what the LENS grains need in a silo (storage and reminders are the host's choice).</summary>
public static class LensGrainsExtensions
{
    /// <summary>
    /// Adds <see cref="LensGrainOptions"/> (validated when the silo starts), the default <see cref="IMeasurementBackendFactory"/> and
    /// <see cref="TenantBackends"/> (<see cref="TenantBackends.None"/>) unless registered already, <see cref="TimeProvider.System"/>
    /// (unless one is registered), the <see cref="ModelCache"/>, and the heavy-work <see cref="HeavyWorkScheduler"/> and
    /// <see cref="HeavyWorkBudget"/>. The silo must also have a grain storage named <see cref="LensGrainOptions.StorageName"/> and a
    /// reminder service.
    /// </summary>
    public static ISiloBuilder AddLensGrains(this ISiloBuilder builder, Action<LensGrainOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<LensGrainOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LensGrainOptions>, GrainOptionsValidator>());
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton(TenantBackends.None);
        builder.Services.TryAddSingleton<IMeasurementBackendFactory, MeasurementBackendFactory>();
        builder.Services.AddSingleton<ModelCache>();
        builder.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ModelCache>());
        builder.Services.TryAddSingleton<HeavyWorkScheduler>();
        builder.Services.TryAddSingleton<HeavyWorkBudget>();
        return builder;
    }

    /// <summary>
    /// As <see cref="AddLensGrains(ISiloBuilder, Action{LensGrainOptions})"/>, with <paramref name="options"/> itself as the value every
    /// <see cref="IOptions{LensGrainOptions}"/> reads: nothing is copied setting by setting, so none can be left out (the host binds
    /// it from <c>Lens:Grains</c>). It is validated when the silo starts, as bound options are.
    /// </summary>
    public static ISiloBuilder AddLensGrains(this ISiloBuilder builder, LensGrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        AddLensGrains(builder);
        builder.Services.AddSingleton<IOptionsFactory<LensGrainOptions>>(sp =>
            new InstanceFactory(options, sp.GetServices<IValidateOptions<LensGrainOptions>>()));
        return builder;
    }

    /// <summary><see cref="LensGrainOptions.Validate"/> in the options pipeline: a wrong setting stops the silo's start.</summary>
    private sealed class GrainOptionsValidator : IValidateOptions<LensGrainOptions>
    {
        public ValidateOptionsResult Validate(string? name, LensGrainOptions options)
        {
            try
            {
                options.Validate();
                return ValidateOptionsResult.Success;
            }
            catch (InvalidOperationException ex)
            {
                return ValidateOptionsResult.Fail(ex.Message);
            }
        }
    }

    /// <summary>Options whose value is one given object, validated as the options factory validates bound ones.</summary>
    private sealed class InstanceFactory(LensGrainOptions options, IEnumerable<IValidateOptions<LensGrainOptions>> validators)
        : IOptionsFactory<LensGrainOptions>
    {
        public LensGrainOptions Create(string name)
        {
            var failures = validators.Select(v => v.Validate(name, options)).Where(r => r.Failed).SelectMany(r => r.Failures ?? []).ToList();
            return failures.Count > 0 ? throw new OptionsValidationException(name, typeof(LensGrainOptions), failures) : options;
        }
    }
}
