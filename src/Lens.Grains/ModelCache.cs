using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Lens.Abstractions;
using Lens.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>
/// One per silo: the composed model of each deployment its predictors serve, kept current by push. The first prediction of a
/// deployment subscribes to its deployment grain (<see cref="IDeploymentGrain.SubscribeModelAsync"/>), which tells this cache of every
/// later model change before the call that made the change returns; so a prediction costs a dictionary look-up, never a grain call, and
/// a re-profiled bucket is still used by the very next prediction. What can end a subscription unseen is covered three ways: a
/// deployment activation that deactivates says so (<see cref="DeploymentLeavingAsync"/>); one whose silo leaves the cluster is
/// forgotten when this silo's membership view drops that silo; and every subscription is renewed after
/// <see cref="LensGrainOptions.ModelLease"/>.
/// </summary>
public sealed partial class ModelCache : IModelObserver, ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private readonly IGrainFactory _grains;
    private readonly IClusterMembershipService _membership;
    private readonly LensGrainOptions _options;
    private readonly ILogger<ModelCache> _logger;
    private readonly TimeProvider _time;
    private readonly long _leaseTicks;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lazy<Task<IModelObserver>> _self;
    private Task? _watcher;

    /// <param name="time">The clock leases are read from (the silo's <see cref="TimeProvider"/>; a fake one in tests).</param>
    public ModelCache(IGrainFactory grains, IClusterMembershipService membership, IOptions<LensGrainOptions> options, ILogger<ModelCache> logger,
        TimeProvider time)
    {
        _grains = grains;
        _membership = membership;
        _options = options.Value;
        _logger = logger;
        _time = time;
        _leaseTicks = (long)(_options.ModelLease.TotalSeconds * time.TimestampFrequency);
        // One reference for the silo's lifetime, held here so Orleans' weak handle to this object stays alive. Orleans refuses to
        // create it on a grain's scheduler, and the first use is a predictor's call: Task.Run leaves that scheduler.
        _self = new(() => Task.Run(() => _grains.CreateObjectReference<IModelObserver>(this)));
    }

    /// <summary>Deployments (and pushed versions not yet fetched) held; for tests and diagnostics.</summary>
    public int Count => _entries.Count;

    /// <summary>Whether a model of the deployment is held (for tests and diagnostics; its lease may have run out).</summary>
    public bool Holds(DeploymentKey key) => _entries.TryGetValue(key?.Format() ?? "", out var entry) && entry.Model is not null;

    /// <summary>The deployment's current model and its version: from the cache, or composed from its bucket snapshots.</summary>
    public ValueTask<(DeploymentModel Model, long Version)> GetAsync(DeploymentKey key)
    {
        var text = key.Format();
        return TryGet(text, out var model, out var version)
            ? ValueTask.FromResult((model, version))
            : new ValueTask<(DeploymentModel, long)>(RefreshAsync(key, text));
    }

    /// <summary>
    /// The current model of the deployment whose key is <paramref name="deploymentKey"/> (<see cref="DeploymentKey.Format"/>), if held
    /// under its lease. Allocates nothing; only well-formed keys are ever held.
    /// </summary>
    public bool TryGet(string deploymentKey, [NotNullWhen(true)] out DeploymentModel? model, out long version)
    {
        if (_entries.TryGetValue(deploymentKey, out var entry) && entry.Model is { } held && _time.GetTimestamp() < entry.LeaseEnds)
        {
            (model, version) = (held, entry.Version);
            return true;
        }

        (model, version) = (null, 0);
        return false;
    }

    private async Task<(DeploymentModel, long)> RefreshAsync(DeploymentKey key, string text)
    {
        // The lease counts from before the subscription: a push sent after it reached the deployment grain arrives within it.
        var leaseEnds = _time.GetTimestamp() + _leaseTicks;
        var subscription = await _grains.GetGrain<IDeploymentGrain>(text).SubscribeModelAsync(await _self.Value);
        LensTelemetry.ModelSubscriptions.Add(1, LensTelemetry.Deployment(key.Tenant, key.Device, key.Deployment));
        var stamp = subscription.Stamp;
        DeploymentModel model;
        if (_entries.TryGetValue(text, out var known) && known.Model is not null && known.Activation == subscription.Activation &&
            known.Version == stamp.Version && known.Context!.SameAs(stamp.Context))
        {
            model = known.Model; // only the lease ran out
        }
        else
        {
            var all = stamp.Context.ToBucketSet().AllBuckets().ToArray();
            var snapshots = await Task.WhenAll(all.Select(b => _grains.GetGrain<IBucketGrain>(key.Bucket(b).Format()).GetSnapshotAsync()));
            model = (await DeploymentModels.ComposeAsync(_grains, key, stamp.Context, all, snapshots))
                .WithTrafficEstimates(stamp.Estimates?.Select(e => e.ToCore()) ?? []); // costs taken from live traffic, with their provenance
        }

        lock (_gate)
        {
            // A newer version pushed by the same activation while this one was being fetched: serve it this once, do not keep it.
            if (_entries.TryGetValue(text, out var current) && current.Activation == subscription.Activation && current.Version > stamp.Version)
            {
                return (model, stamp.Version);
            }

            if (_entries.Count >= _options.PredictorCacheSize && !_entries.ContainsKey(text))
            {
                _entries.Clear(); // crude bound: models are cheap to rebuild from snapshots
            }

            _entries[text] = new Entry(stamp.Version, subscription.Activation, subscription.Host, leaseEnds, stamp.Context, model);
        }

        return (model, stamp.Version);
    }

    public Task ModelChangedAsync(string deploymentKey, long version, Guid activation)
    {
        lock (_gate)
        {
            if (!_entries.TryGetValue(deploymentKey, out var current) || current.Activation != activation || current.Version < version)
            {
                _ = DeploymentKey.Parse(deploymentKey); // only well-formed keys are ever held
                // A marker without a model: the next prediction fetches, and nothing older than it is kept meanwhile.
                _entries[deploymentKey] = new Entry(version, activation, current?.Host, 0, null, null);
            }
        }

        return Task.CompletedTask;
    }

    public Task DeploymentLeavingAsync(string deploymentKey, Guid activation)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(deploymentKey, out var entry) && entry.Activation == activation)
            {
                _entries.TryRemove(deploymentKey, out _);
            }
        }

        return Task.CompletedTask;
    }

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(ModelCache), ServiceLifecycleStage.Active, _ =>
        {
            _watcher = Task.Run(() => WatchMembershipAsync(_stopping.Token));
            return Task.CompletedTask;
        }, async _ =>
        {
            await _stopping.CancelAsync();
            if (_watcher is not null)
            {
                await _watcher.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        });

    public void Dispose() => _stopping.Dispose();

    private async Task WatchMembershipAsync(CancellationToken ct)
    {
        try
        {
            await foreach (var snapshot in _membership.MembershipUpdates.WithCancellation(ct))
            {
                Forget(e => e.Host is { } host && snapshot.GetSiloStatus(host) != SiloStatus.Active);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            // Without the watcher a dead deployment silo is noticed when the lease runs out: slower, still bounded.
            WatcherFailed(_logger, ex);
        }
    }

    private void Forget(Func<Entry, bool> which)
    {
        lock (_gate)
        {
            foreach (var (key, entry) in _entries)
            {
                if (which(entry))
                {
                    _entries.TryRemove(key, out _);
                }
            }
        }
    }

    [LoggerMessage(20, LogLevel.Warning, "The model cache stopped watching cluster membership; subscriptions now end by their lease only")]
    private static partial void WatcherFailed(ILogger logger, Exception exception);

    /// <summary>A deployment's model (null: a pushed version not fetched yet) with what it is valid for.</summary>
    private sealed record Entry(long Version, Guid Activation, SiloAddress? Host, long LeaseEnds, BucketContext? Context,
        DeploymentModel? Model);
}
