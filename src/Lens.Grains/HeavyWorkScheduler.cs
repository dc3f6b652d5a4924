using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>
/// One per silo: a few dedicated threads (<see cref="LensGrainOptions.HeavyWorkerThreads"/>) that run the CPU-heavy part of heavy
/// calls (a simulation of up to a million requests, the advisor's search, a what-if's cost curves), in arrival order. Predictions,
/// grain turns and HTTP requests run on the .NET thread pool; a heavy call that ran there held a pool thread for seconds, and a few
/// at once starved predictions until the pool grew (issue 17, item 15). Here they wait for one of these threads instead, so on two
/// cores one core stays with the pool. The caller captures its inputs first (the model, the request) and awaits the result: its
/// grain turn stays short. How many heavy calls reach the queue is bounded by <see cref="HeavyWorkBudget"/>.
/// </summary>
public sealed class HeavyWorkScheduler : IDisposable
{
    [ThreadStatic]
    private static bool t_heavyThread;

    private readonly BlockingCollection<Action> _queue = [];
    private readonly Thread[] _threads;
    private int _running;
    private long _completed;

    public HeavyWorkScheduler(IOptions<LensGrainOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _threads = new Thread[options.Value.HeavyWorkerThreads];
        for (var i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(Work) { IsBackground = true, Name = $"lens-heavy-{i}" };
            _threads[i].Start();
        }
    }

    /// <summary>Whether the calling thread is one of the heavy-work threads (for tests and diagnostics).</summary>
    public static bool OnHeavyThread => t_heavyThread;

    /// <summary>Threads that run heavy work.</summary>
    public int Workers => _threads.Length;

    /// <summary>Items running now.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Items waiting for a thread.</summary>
    public int Queued => _queue.Count;

    /// <summary>Items finished (with a result or an exception) since the silo started.</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Runs <paramref name="work"/> on a heavy-work thread; its result or exception completes the task.</summary>
    public Task<T> RunAsync<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add(() =>
        {
            try
            {
                done.SetResult(work());
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        });
        return done.Task;
    }

    /// <summary>Stops taking work; what is queued still runs, on background threads that do not hold the process open.</summary>
    public void Dispose() => _queue.CompleteAdding();

    private void Work()
    {
        t_heavyThread = true;
        foreach (var item in _queue.GetConsumingEnumerable())
        {
            Interlocked.Increment(ref _running);
            try
            {
                item();
            }
            finally
            {
                Interlocked.Decrement(ref _running);
                Interlocked.Increment(ref _completed);
            }
        }
    }
}
