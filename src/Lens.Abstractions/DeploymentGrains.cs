namespace Lens.Abstractions;

/// <summary>
/// The calls that span a device's deployments, shared by the HTTP API and the cluster client so that both address the grains alike:
/// creating one (its key comes from its spec) and listing them (the device keeps their ids, each deployment grain its own record).
/// </summary>
public static class DeploymentGrains
{
    public static IDeploymentGrain Get(IGrainFactory grains, DeploymentKey key)
    {
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentNullException.ThrowIfNull(key);
        return grains.GetGrain<IDeploymentGrain>(key.Format());
    }

    /// <summary>
    /// Creates a deployment on <paramref name="device"/>. Its grain's key is built from the spec's id (a bad name is refused by the key);
    /// the deployment grain validates the whole spec before it stores anything (the checks need Core, which wire types do not carry).
    /// </summary>
    public static Task<CreateDeploymentResult> CreateAsync(IGrainFactory grains, DeviceKey device, DeploymentSpec? spec)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (spec is null)
        {
            throw LensException.Validation("spec", "a deployment spec is required");
        }

        spec = spec.Normalized();
        if (LensNames.Check(spec.Name, "name") is { } nameError)
        {
            throw LensException.Validation("name", nameError); // the key is built from it: named as the spec's field, not the key's
        }

        return Get(grains, device.Deployment(spec.DeploymentId)).CreateAsync(spec);
    }

    /// <summary>
    /// The device's deployments, sorted by id (ordinal). An id the device lists whose deployment grain holds nothing (a create that
    /// stopped between the two writes; the same create again completes it) is left out.
    /// </summary>
    public static async Task<DeploymentInfo[]> ListAsync(IGrainFactory grains, DeviceKey device)
    {
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentNullException.ThrowIfNull(device);
        var ids = await grains.GetGrain<IDeviceGrain>(device.Format()).ListDeploymentIdsAsync();
        var infos = await Task.WhenAll(ids.Select(async id =>
        {
            try
            {
                return await Get(grains, device.Deployment(id)).GetAsync();
            }
            catch (LensException ex) when (ex.Kind == LensErrorKind.NotFound)
            {
                return null;
            }
        }));
        return [.. infos.OfType<DeploymentInfo>()];
    }
}
