using Lens.Abstractions;
using Lens.Core;
using Lens.Measurement;
using Microsoft.Extensions.Logging;

namespace Lens.Grains;

/// <summary>Creates the measurement backend a deployment's <see cref="BackendSpec"/> describes. Registered in the silo; tests replace it.</summary>
public interface IMeasurementBackendFactory
{
    /// <summary>
    /// A backend for <paramref name="spec"/> of a deployment of <paramref name="tenant"/> (from the deployment grain's key: the authority).
    /// Throws <see cref="NotSupportedException"/> for a kind this silo cannot create and <see cref="ArgumentException"/> for a spec it
    /// cannot use. The caller disposes the backend when it is <see cref="IDisposable"/>.
    /// </summary>
    IMeasurementBackend Create(string tenant, BackendSpec spec);
}

/// <summary>
/// The silo's factory: <c>openai</c> (<see cref="OpenAiCompletionsBackend"/>), <c>replay</c> (<see cref="ModelReplayBackend"/> over
/// the spec's model JSON) and <c>reference</c> through <see cref="ReferenceFactory"/>, which the host sets to the built-in engine
/// (without it that kind is refused with a clear error). An <c>openai</c> backend is the tenant's configured one of that name in
/// <see cref="TenantBackends"/>; a spec's own endpoint or key variable (only in specs stored before backends were bound to tenants)
/// is never used.
/// </summary>
public class MeasurementBackendFactory(ILoggerFactory loggerFactory, TenantBackends tenantBackends) : IMeasurementBackendFactory
{
    /// <summary>Creates the built-in reference engine's backend from an engine profile name; null until a host wires it.</summary>
    public Func<string, IMeasurementBackend>? ReferenceFactory { get; init; }

    public virtual IMeasurementBackend Create(string tenant, BackendSpec spec)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(spec);
        switch (spec.Kind)
        {
            case BackendSpec.Replay:
                var model = ModelJson.Deserialize(spec.ModelJson ?? "", "backend.modelJson");
                return new ModelReplayBackend(model, spec.Noise, spec.Seed);
            case BackendSpec.OpenAi when spec.Name is null:
                throw new ArgumentException("this deployment names a free endpoint, which the server no longer calls; create it again " +
                                            "naming a backend the operator configured for your tenant (backend.name)");
            case BackendSpec.OpenAi:
                var backend = tenantBackends.Find(tenant, spec.Name) ?? throw new ArgumentException(tenantBackends.Check(tenant, spec.Name));
                var options = new OpenAiCompletionsOptions
                {
                    BaseAddress = backend.Endpoint,
                    Model = spec.ModelName,
                    ApiKey = backend.ApiKey,
                    RefuseLocalAddresses = !tenantBackends.AllowLocalAddresses,
                };
                return new OpenAiCompletionsBackend(options, logger: loggerFactory.CreateLogger<OpenAiCompletionsBackend>());
            case BackendSpec.Reference when ReferenceFactory is { } reference:
                return reference(spec.EngineProfile ?? throw new ArgumentException("a reference backend needs an engine profile name"));
            case BackendSpec.Reference:
                throw new NotSupportedException(
                    "backend kind 'reference' (the built-in engine) is not wired into this silo yet; use 'replay' or 'openai'");
            default:
                throw new NotSupportedException($"backend kind '{spec.Kind}' is not one of {string.Join(", ", BackendSpec.Kinds)}");
        }
    }
}
