namespace Lens.Engine;

/// <summary>
/// The first-come-first-served queue of requests that a <see cref="Scheduler"/> admits from: its own, or one shared by the
/// schedulers of several replicas (a fleet behind one queue, as the serving simulation's shared routing). Read and written under
/// <see cref="Lock"/> only, which is also the monitor an idle loop waits on.
/// </summary>
internal sealed class RequestQueue
{
    public object Lock { get; } = new();

    public Queue<Sequence> Waiting { get; } = new();
}
