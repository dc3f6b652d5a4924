using Lens.Abstractions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>The stored state of a tenant's device directory: deployment count by device name.</summary>
[GenerateSerializer, Alias("lens.DeviceDirectoryState.v1")]
public sealed class DeviceDirectoryState
{
    [Id(0)]
    public Dictionary<string, int> Devices { get; set; } = [];
}

/// <summary>
/// A tenant's devices (key: the tenant). One table row holds them all, so their number is bounded by
/// <see cref="LensGrainOptions.MaxDevicesPerTenant"/>.
/// </summary>
[GrainType("device-directory")]
public sealed class DeviceDirectoryGrain(
    [PersistentState("devices", LensGrainOptions.StorageName)] IPersistentState<DeviceDirectoryState> state,
    IOptions<LensGrainOptions> options) : Grain, IDeviceDirectoryGrain
{
    private readonly int _maxDevices = options.Value.MaxDevicesPerTenant;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        LensNames.Ensure(this.GetPrimaryKeyString(), "tenant");
        return Task.CompletedTask;
    }

    public async Task<bool> RegisterAsync(string device, int deployments, bool refuseWhenFull)
    {
        LensNames.Ensure(device, "device");
        if (deployments < 0)
        {
            throw LensException.Validation("deployments", "a deployment count is never negative");
        }

        var devices = state.State.Devices;
        if (devices.TryGetValue(device, out var known))
        {
            if (known == deployments)
            {
                return true;
            }
        }
        else if (devices.Count >= _maxDevices)
        {
            return refuseWhenFull
                ? throw LensException.Conflict($"the tenant has {_maxDevices} devices, the most allowed; add deployments to an existing device")
                : false;
        }

        devices[device] = deployments;
        await state.WriteStateAsync();
        return true;
    }

    public Task<DeviceSummary[]> ListAsync() =>
        Task.FromResult(state.State.Devices.OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => new DeviceSummary(d.Key, d.Value)).ToArray());
}

internal static partial class GrainLog
{
    [LoggerMessage(40, LogLevel.Warning, "Device {Device} could not be listed in its tenant's directory: {Reason}")]
    public static partial void DirectoryUnlisted(ILogger logger, string device, string reason);
}
