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
    /// Creates a deployment on <paramref name="device"/>. The spec is checked here first because the grain's key is built from its id;
    /// the deployment grain checks it again (a caller may address it directly).
    /// </summary>
    public static Task<CreateDeploymentResult> CreateAsync(IGrainFactory grains, DeviceKey device, DeploymentSpec? spec)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (spec is null)
        {
            throw LensException.Validation("spec", "a deployment spec is required");
        }

        spec = spec.Normalized();
        var errors = spec.Validate();
        return errors.Count > 0
            ? throw LensException.Validation(errors)
            : Get(grains, device.Deployment(spec.DeploymentId)).CreateAsync(spec);
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
