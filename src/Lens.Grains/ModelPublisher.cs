using Lens.Abstractions;
using Microsoft.Extensions.Logging;
using Orleans.Utilities;

namespace Lens.Grains;

/// <summary>
/// A deployment activation's model caches (<see cref="IModelObserver"/>, one per silo that serves it): subscribed for twice the model
/// lease, told of every model change before the call that made it returns, and told when the activation goes away.
/// </summary>
internal sealed class ModelPublisher(string deploymentKey, TimeSpan lease, ILogger logger)
{
    // A push that takes longer than this is given up on; the silo it was for renews its subscription when its lease ends.
    private static readonly TimeSpan PushTimeout = TimeSpan.FromSeconds(5);

    private readonly ObserverManager<IModelObserver> _observers = new(lease * 2, logger);

    /// <summary>This activation's id: a cache compares versions only within one activation.</summary>
    public Guid Activation { get; } = Guid.NewGuid();

    public void Subscribe(IModelObserver observer) => _observers.Subscribe(observer, observer);

    /// <summary>Tells every subscribed cache that the model is now at <paramref name="version"/>; returns once each has heard or timed out.</summary>
    public Task ChangedAsync(long version) => PushAsync(o => o.ModelChangedAsync(deploymentKey, version, Activation));

    public Task LeavingAsync() => PushAsync(o => o.DeploymentLeavingAsync(deploymentKey, Activation));

    private async Task PushAsync(Func<IModelObserver, Task> push)
    {
        _observers.ClearExpired();
        var observers = _observers.ToArray();
        if (observers.Length == 0)
        {
            return;
        }

        var delivered = await Task.WhenAll(observers.Select(async o =>
        {
            try
            {
                await push(o).WaitAsync(PushTimeout);
                return true;
            }
            catch (Exception ex) when (ex is ClientNotAvailableException or TimeoutException or OrleansMessageRejectionException)
            {
                // Expected when a silo stops or fails: one line, no stack trace (its cache subscribes again if it comes back).
                GrainLog.PushToGoneSilo(logger, deploymentKey, ex.GetType().Name);
                return false;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                GrainLog.PushFailed(logger, ex, deploymentKey);
                return false;
            }
        }));
        for (var i = 0; i < observers.Length; i++)
        {
            if (!delivered[i])
            {
                _observers.Unsubscribe(observers[i]); // its silo is gone or unreachable; a live one subscribes again
            }
        }
    }
}
