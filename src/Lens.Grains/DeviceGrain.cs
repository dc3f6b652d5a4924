using Lens.Abstractions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>
/// A device (key <see cref="DeviceKey"/>): the names of its deployments and its profiling queue. The queue holds deployment ids in the
/// order their runs were asked for; one worker task per activation, outside any grain turn, takes the head and has
/// <see cref="ProfileWorker"/> measure that deployment's rows one at a time through its <see cref="DeploymentGrain"/>
/// (<see cref="IDeviceProfileSteps"/>), then the next: one measurement at a time across the device (an NPU is exclusive). A reminder
/// re-kicks an unfinished queue after a silo restart or a deactivation; each run resumes at its deployment's durable next row.
/// <para>
/// This grain never calls a deployment grain from a turn (only its worker does, from outside one), and deployment grains call it to
/// record their names and queue runs: no call cycle between the two (see <see cref="DeploymentGrain"/>).
/// </para>
/// </summary>
[GrainType("device")]
public sealed partial class DeviceGrain(
    [PersistentState("device", LensGrainOptions.StorageName)] IPersistentState<DeviceState> state,
    IMeasurementBackendFactory backends,
    IOptions<LensGrainOptions> options,
    TimeProvider time,
    ILogger<DeviceGrain> logger) : Grain, IDeviceGrain, IDeviceSchedule, IRemindable
{
    private const string ResumeReminder = "lens-profile-resume";
    private const string OldReprofilePrefix = "lens-reprofile:"; // the old device grain's per-deployment reminders; deployments own theirs now

    private readonly LensGrainOptions _options = options.Value;
    private DeviceKey _key = null!;
    private Guid _workerId;
    private Task? _worker;
    private CancellationTokenSource? _workerStop;

    private Dictionary<string, string> Names => state.State.Names ??= [];

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _key = DeviceKey.Parse(this.GetPrimaryKeyString());
        var legacy = state.State.Deployments;
        if (legacy.Count > 0)
        {
            // Stored by the old device grain (every spec in this row): list them now, and hand each to its deployment grain.
            foreach (var (id, entry) in legacy)
            {
                Names.TryAdd(entry.Spec.Name, id);
            }

            var grains = legacy.Keys.Select(id => GrainFactory.GetGrain<IDeploymentAdoption>(_key.Deployment(id).Format())).ToArray();
            _ = Task.Run(() => HandOverAsync(grains), CancellationToken.None);
        }

        if (state.State.Queue.Count > 0)
        {
            GrainLog.Resuming(logger, _key.Format(), state.State.Queue.Count);
            EnsureWorker();
        }

        if (Names.Count > 0)
        {
            await ListInDirectoryAsync(refuseWhenFull: false, Names.Count);
        }
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        StopWorker();
        return Task.CompletedTask;
    }

    public Task<string[]> ListDeploymentIdsAsync() => Task.FromResult(Names.Values.Order(StringComparer.Ordinal).ToArray());

    public async Task AddDeploymentAsync(string name, string deploymentId)
    {
        LensNames.Ensure(name, "name");
        var id = _key.Deployment(deploymentId).Deployment;
        if (Names.TryGetValue(name, out var existing))
        {
            if (existing == id)
            {
                return;
            }

            throw LensException.Conflict(
                $"deployment name '{name}' on device '{_key.Device}' is taken by a different spec (id {existing}); " +
                "a changed configuration is a new deployment: give it a new name");
        }

        if (Names.Count >= _options.MaxDeploymentsPerDevice)
        {
            throw LensException.Conflict($"device '{_key.Device}' has {Names.Count} deployments, the most allowed");
        }

        // Listed before it is stored: a tenant with the most devices allowed is refused a new one (409) before anything is written.
        await ListInDirectoryAsync(refuseWhenFull: true, Names.Count + 1);
        Names[name] = id;
        await state.WriteStateAsync();
    }

    public async Task EnqueueProfileAsync(string deploymentId)
    {
        if (!Names.ContainsValue(deploymentId))
        {
            throw LensException.NotFound($"deployment '{deploymentId}' does not exist on device '{_key.Device}'");
        }

        if (!state.State.Queue.Contains(deploymentId))
        {
            state.State.Queue.Add(deploymentId);
            await state.WriteStateAsync();
        }

        EnsureWorker();
        await this.RegisterOrUpdateReminder(ResumeReminder, _options.ResumeCheckPeriod, _options.ResumeCheckPeriod);
    }

    public async Task<string?> NextDeploymentAsync(Guid workerId, string? finished)
    {
        if (workerId != _workerId)
        {
            return null;
        }

        var queue = state.State.Queue;
        if (finished is not null && queue.Remove(finished))
        {
            await state.WriteStateAsync();
        }

        if (queue.Count == 0)
        {
            _workerId = Guid.Empty; // this worker ends; the next queued run starts a new one
            await UnregisterResumeReminderAsync();
            return null;
        }

        return queue[0];
    }

    public Task<LegacyDeployment?> TakeLegacyAsync(string deploymentId) =>
        Task.FromResult(state.State.Deployments.TryGetValue(deploymentId, out var entry)
            ? new LegacyDeployment(entry, state.State.Runs.GetValueOrDefault(deploymentId))
            : null);

    public async Task LegacyMovedAsync(string deploymentId)
    {
        if (state.State.Deployments.Remove(deploymentId) | state.State.Runs.Remove(deploymentId))
        {
            await state.WriteStateAsync(); // the row loses that spec; once all moved it holds names and the queue only
        }
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName.StartsWith(OldReprofilePrefix, StringComparison.Ordinal))
        {
            if (await this.GetReminder(reminderName) is { } old)
            {
                await this.UnregisterReminder(old); // the deployment registered its own when it adopted its old-shape entry
            }

            return;
        }

        if (reminderName != ResumeReminder)
        {
            return;
        }

        if (state.State.Queue.Count == 0)
        {
            await UnregisterResumeReminderAsync();
            return;
        }

        EnsureWorker();
    }

    private async Task HandOverAsync(IDeploymentAdoption[] grains)
    {
        foreach (var grain in grains)
        {
            try
            {
                await grain.AdoptLegacyAsync();
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                HandOverFailed(logger, ex, grain.GetPrimaryKeyString()); // the deployment adopts on its next call, or on the next activation
            }
        }
    }

    // Devices stored before the directory existed list themselves when they next activate; the device works whatever happens here.
    private async Task ListInDirectoryAsync(bool refuseWhenFull, int deployments)
    {
        var directory = GrainFactory.GetGrain<IDeviceDirectoryGrain>(_key.Tenant);
        if (refuseWhenFull)
        {
            await directory.RegisterAsync(_key.Device, deployments, refuseWhenFull: true);
            return;
        }

        try
        {
            if (!await directory.RegisterAsync(_key.Device, deployments, refuseWhenFull: false))
            {
                GrainLog.DirectoryUnlisted(logger, _key.Format(), "the tenant has the most devices allowed");
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            GrainLog.DirectoryUnlisted(logger, _key.Format(), ex.Message);
        }
    }

    private void EnsureWorker()
    {
        if (state.State.Queue.Count == 0 || (_workerId != Guid.Empty && _worker is { IsCompleted: false }))
        {
            return;
        }

        StopWorker();
        var workerId = _workerId = Guid.NewGuid();
        var stop = _workerStop = new CancellationTokenSource();
        var queue = this.AsReference<IDeviceSchedule>();
        var key = _key;
        var grains = GrainFactory;

        // Task.Run leaves the grain's scheduler: the measurements run outside any grain turn, each step calls a grain.
        _worker = Task.Run(() => RunQueueAsync(queue, grains, key, workerId, stop.Token), CancellationToken.None);
    }

    /// <summary>The worker: each queued deployment's run to its end, in queue order, one row at a time.</summary>
    private async Task RunQueueAsync(IDeviceSchedule queue, IGrainFactory grains, DeviceKey key, Guid workerId, CancellationToken stop)
    {
        var device = key.Format();
        try
        {
            string? finished = null;
            while (!stop.IsCancellationRequested && await queue.NextDeploymentAsync(workerId, finished) is { } id)
            {
                var deployment = grains.GetGrain<IDeploymentGrain>(key.Deployment(id).Format());
                await ProfileWorker.RunAsync(deployment.AsReference<IDeviceProfileSteps>(), workerId, backends, _options, time, logger,
                    key.Tenant, device, stop);
                if (stop.IsCancellationRequested || !await RunEndedAsync(deployment))
                {
                    return; // stopping, or the worker failed (it logged why): the resume reminder starts a new one
                }

                finished = id;
            }
        }
        catch (Exception ex) when (!stop.IsCancellationRequested)
        {
            GrainLog.WorkerFailed(logger, ex, device); // the reminder starts a new worker; the run resumes at its durable next row
        }
        catch (Exception) when (stop.IsCancellationRequested)
        {
            // Stopping: nothing to report.
        }
    }

    private static async Task<bool> RunEndedAsync(IDeploymentGrain deployment)
    {
        try
        {
            var progress = await deployment.GetProfileProgressAsync();
            return progress.IsFinished || progress.State == ProfileState.None;
        }
        catch (LensException ex) when (ex.Kind == LensErrorKind.NotFound)
        {
            return true; // nothing to run there
        }
    }

    private void StopWorker()
    {
        _workerId = Guid.Empty;
        if (_workerStop is { } stop)
        {
            stop.Cancel();
            stop.Dispose();
            _workerStop = null;
        }
    }

    private async Task UnregisterResumeReminderAsync()
    {
        if (await this.GetReminder(ResumeReminder) is { } reminder)
        {
            await this.UnregisterReminder(reminder);
        }
    }

    [LoggerMessage(41, LogLevel.Warning, "A deployment {Deployment} stored in its device's old row could not adopt it yet")]
    private static partial void HandOverFailed(ILogger logger, Exception exception, string deployment);

    [LoggerMessage(42, LogLevel.Information, "Deployment {Deployment} moved from its device's old row into a storage row of its own")]
    internal static partial void Adopted(ILogger logger, string deployment);
}
