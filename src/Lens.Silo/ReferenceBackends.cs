using Lens.Abstractions;
using Lens.Engine;
using Lens.Measurement;

namespace Lens.Silo;

/// <summary>
/// The <c>reference</c> backend kind: the built-in engine (<see cref="ReferenceEngine"/>) in the silo's process. A spec names a
/// profile, never a path: a shipped one (<see cref="EngineProfiles.Names"/>) or <c>{name}.json</c> in the server's
/// <see cref="LensServerOptions.EngineProfileDirectory"/>, so a tenant cannot make the server read files of its choosing.
/// </summary>
internal static class ReferenceBackends
{
    public static IMeasurementBackend Create(string name, string? profileDirectory)
    {
        if (LensNames.Check(name, "engine profile") is { } reason)
        {
            throw new ArgumentException(reason);
        }

        EngineProfile profile;
        if (EngineProfiles.Names.Contains(name))
        {
            profile = EngineProfiles.Load(name);
        }
        else if (profileDirectory is not null && File.Exists(Path.Combine(profileDirectory, name + ".json")))
        {
            profile = EngineProfile.Load(Path.Combine(profileDirectory, name + ".json"));
        }
        else
        {
            throw new ArgumentException(
                $"engine profile '{name}' is neither shipped ({string.Join(", ", EngineProfiles.Names)}) nor in the server's engine profile folder");
        }

        return new OwnedEngineBackend(ReferenceEngine.Create(profile));
    }

    /// <summary>The engine's backend, owning the engine: the profile worker disposes it when the run ends.</summary>
    private sealed class OwnedEngineBackend(ReferenceEngine engine) : IMeasurementBackend, IDisposable
    {
        private readonly ReferenceEngineBackend _inner = new(engine);

        public string Describe => _inner.Describe;

        public Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default) =>
            _inner.MeasureAsync(inputLength, outputLength, cancellationToken);

        public void Dispose() => engine.Dispose();
    }
}
