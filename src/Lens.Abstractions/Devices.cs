using Orleans.Concurrency;

namespace Lens.Abstractions;

/// <summary>One device of a tenant, as <c>GET /v1/devices</c> lists it.</summary>
[GenerateSerializer, Immutable, Alias("lens.DeviceSummary.v1")]
public sealed record DeviceSummary(
    [property: Id(0)] string Name,
    [property: Id(1)] int Deployments);

/// <summary>
/// The devices of one tenant (key: the tenant name). A device grain registers here before its first deployment is stored, and again
/// whenever its deployment count changes or it activates with deployments, so devices made before the directory existed appear too.
/// It never calls device grains (no call cycle).
/// </summary>
[Alias("lens.IDeviceDirectoryGrain")]
public interface IDeviceDirectoryGrain : IGrainWithStringKey
{
    /// <summary>
    /// Records <paramref name="device"/> with its deployment count (idempotent: an unchanged entry writes nothing). A device not yet
    /// listed is refused (<c>Conflict</c>) when the tenant already has the most devices allowed, unless <paramref name="refuseWhenFull"/>
    /// is false, in which case it is left out and false returned.
    /// </summary>
    [Alias("Register")]
    Task<bool> RegisterAsync(string device, int deployments, bool refuseWhenFull);

    /// <summary>The tenant's devices, sorted by name (ordinal).</summary>
    [Alias("List"), ReadOnly]
    Task<DeviceSummary[]> ListAsync();
}
