using Lens.Abstractions;
using Lens.Core;
using Lens.Measurement;
using Microsoft.Extensions.Logging;

namespace Lens.Grains;

/// <summary>Creates the measurement backend a deployment's <see cref="BackendSpec"/> describes. Registered in the silo; tests replace it.</summary>
public interface IMeasurementBackendFactory
{
    /// <summary>
    /// A backend for <paramref name="spec"/>. Throws <see cref="NotSupportedException"/> for a kind this silo cannot create and
    /// <see cref="ArgumentException"/> for a spec it cannot use. The caller disposes the backend when it is <see cref="IDisposable"/>.
    /// </summary>
    IMeasurementBackend Create(BackendSpec spec);
}

/// <summary>
/// The silo's factory: <c>openai</c> (<see cref="OpenAiCompletionsBackend"/>), <c>replay</c> (<see cref="ModelReplayBackend"/> over
/// the spec's model JSON) and <c>reference</c> through <see cref="ReferenceFactory"/>, which the host sets to the built-in engine
/// (without it that kind is refused with a clear error). Specs are validated again here: an API key variable must be named
/// <c>LENS_BACKEND_*</c>.
/// </summary>
public class MeasurementBackendFactory(ILoggerFactory loggerFactory) : IMeasurementBackendFactory
{
    /// <summary>Creates the built-in reference engine's backend from an engine profile name; null until a host wires it.</summary>
    public Func<string, IMeasurementBackend>? ReferenceFactory { get; init; }

    public virtual IMeasurementBackend Create(BackendSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        switch (spec.Kind)
        {
            case BackendSpec.Replay:
                var model = ModelJson.Deserialize(spec.ModelJson ?? "", "backend.modelJson");
                return new ModelReplayBackend(model, spec.Noise, spec.Seed);
            case BackendSpec.OpenAi when spec.ApiKeyEnvironmentVariable is { Length: > 0 } env &&
                                         !env.StartsWith(BackendSpec.ApiKeyVariablePrefix, StringComparison.Ordinal):
                throw new ArgumentException($"the API key's environment variable must be named {BackendSpec.ApiKeyVariablePrefix}*");
            case BackendSpec.OpenAi:
                var options = new OpenAiCompletionsOptions
                {
                    BaseAddress = new Uri(spec.Endpoint ?? throw new ArgumentException("an openai backend needs an endpoint")),
                    Model = spec.ModelName,
                    ApiKeyEnvironmentVariable = spec.ApiKeyEnvironmentVariable,
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
