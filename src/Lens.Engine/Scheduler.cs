using System.Diagnostics;

namespace Lens.Engine;

/// <summary>
/// The reference engine's scheduler (vLLM's scheduler): owns the queue, the sequence slots (at most <c>max_num_seqs</c> in
/// flight), admission, cancellation and delivery of tokens, and the step log; its <see cref="ISchedulingPolicy"/> decides each
/// next step (which sequences, which cell) and its <see cref="IStepExecutor"/> runs it. Each iteration drops cancelled sequences,
/// then runs the policy's steps until it is idle or a decode or mixed step has run (admissions, prefills and, under chunked
/// prefill, joins come before it). With several slots, or under chunked prefill, the iterations run on one dedicated thread (<see cref="Start"/>), fed by every caller; callers receive
/// their tokens through <see cref="Sequence.Signal"/> on their own thread, so a slow consumer never holds up the batch. With one
/// slot (batch buckets <c>[1]</c>) the caller runs its request on its own thread under the gate (FIFO) and awaits each token's
/// callback before the next step, exactly as before batching. The steps themselves (admission with its prefill, decode and mixed
/// steps, and what each hands to its sequences) are in Scheduler.Steps.cs.
/// </summary>
internal sealed partial class Scheduler : IDisposable
{
    private readonly IStepExecutor _executor;
    private readonly ISchedulingPolicy _policy;
    private readonly EngineWork _work;
    private readonly StepLog _log;
    private readonly string _name;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly object _queueLock;
    private readonly Queue<Sequence> _waiting;
    private readonly bool _shared;
    private readonly Sequence[] _inFlight; // admission order; _inFlightCount of them
    private readonly int[] _freeSlots;
    private readonly DecodeRow[] _rows;
    private DecodeRow[] _mixedRows = new DecodeRow[16];
    private int _inFlightCount, _freeSlotCount, _pausing;
    private volatile bool _disposed;
    private Thread? _loop;

    /// <param name="maxNumSeqs">Slots: the most sequences in flight at once. Above 1, requests queue for <see cref="Start"/>'s
    /// loop (or for <see cref="Iterate"/>).</param>
    /// <param name="queue">A queue shared with the schedulers of other replicas (a fleet behind one queue: each loop admits from it
    /// at its own step boundaries; requests submitted to any of them wait there); null: a queue of its own. A shared queue always
    /// runs the loop, whatever the slots.</param>
    public Scheduler(IStepExecutor executor, ISchedulingPolicy policy, int maxNumSeqs, EngineWork work, StepLog log, string name,
        RequestQueue? queue = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxNumSeqs);
        _shared = queue is not null;
        queue ??= new RequestQueue();
        _queueLock = queue.Lock;
        _waiting = queue.Waiting;
        _executor = executor;
        _policy = policy;
        _work = work;
        _log = log;
        _name = name;
        _inFlight = new Sequence[maxNumSeqs];
        _rows = new DecodeRow[maxNumSeqs];
        _freeSlots = new int[maxNumSeqs];
        for (var slot = 0; slot < maxNumSeqs; slot++)
        {
            _freeSlots[slot] = maxNumSeqs - 1 - slot; // slot 0 is taken first
        }

        _freeSlotCount = maxNumSeqs;
    }

    /// <summary>Whether requests queue for one loop shared by every caller (more than one slot, or chunked prefill, whose mixed
    /// steps are the loop's).</summary>
    public bool Batched => _inFlight.Length > 1 || _policy is ChunkedPolicy || _shared;

    public bool Disposed => _disposed;

    /// <summary>Requests submitted and not yet admitted (always 0 with one slot: callers wait for the gate instead).</summary>
    public int WaitingRequests
    {
        get
        {
            lock (_queueLock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>Sequences in flight now (for tests; read between iterations).</summary>
    public int InFlight => _inFlightCount;

    /// <summary>Starts the loop thread when batched.</summary>
    public void Start()
    {
        if (!Batched)
        {
            return;
        }

        _loop = new Thread(RunLoop) { IsBackground = true, Name = $"lens-engine {_name}" };
        _loop.Start();
    }

    /// <summary>Runs <paramref name="action"/> between iterations, alone (warm-up); throws once disposed.</summary>
    public T Exclusive<T>(Func<T> action)
    {
        _gate.Wait();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, typeof(ReferenceEngine));
            return action();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Holds the scheduler between iterations until the result is disposed: requests submitted meanwhile wait, and are admitted
    /// together (up to <c>max_num_seqs</c>, in order) when it resumes.
    /// </summary>
    public IDisposable Pause()
    {
        Interlocked.Increment(ref _pausing);
        try
        {
            _gate.Wait();
        }
        finally
        {
            Interlocked.Decrement(ref _pausing);
        }

        return new Resumer(_gate);
    }

    public void Dispose()
    {
        lock (_queueLock)
        {
            _disposed = true;
            Monitor.PulseAll(_queueLock);
        }

        if (_loop is { } loop && loop != Thread.CurrentThread)
        {
            loop.Join(TimeSpan.FromSeconds(30));
        }
    }

    public Task<GenerationResult> SubmitAsync(IReadOnlyList<int>? prompt, int inputLength, int outputTokens,
        Func<int, ValueTask>? onToken, CancellationToken cancellationToken)
    {
        var sequence = new Sequence(prompt, inputLength, outputTokens, streamed: Batched && onToken is not null, cancellationToken);
        if (!Batched)
        {
            return RunAloneAsync(sequence, onToken, cancellationToken);
        }

        lock (_queueLock)
        {
            if (_disposed)
            {
                return Task.FromException<GenerationResult>(new ObjectDisposedException(nameof(ReferenceEngine)));
            }

            sequence.Arrived = Stopwatch.GetTimestamp();
            _waiting.Enqueue(sequence);
            Monitor.Pulse(_queueLock);
        }

        return onToken is null ? sequence.Completion.Task : StreamAsync(sequence, onToken);
    }

    /// <summary>One scheduler iteration: drop cancelled sequences, then the policy's steps until it is idle or has run a decode or
    /// mixed step.</summary>
    public void Iterate()
    {
        for (var r = _inFlightCount - 1; r >= 0; r--)
        {
            var sequence = _inFlight[r];
            if (sequence.Abandoned || sequence.Cancellation.IsCancellationRequested)
            {
                Drop(sequence, new OperationCanceledException(sequence.Cancellation));
            }
        }

        while (true)
        {
            var (step, next) = NextStepOrAdmission();
            if (next is not null)
            {
                if (next.Cancellation.IsCancellationRequested)
                {
                    next.Fail(new OperationCanceledException(next.Cancellation));
                    continue;
                }

                if (step.Kind == StepKind.Join)
                {
                    Join(next);
                }
                else
                {
                    Admit(next, step.LengthBucket);
                }
            }
            else
            {
                if (step.Kind == StepKind.Decode)
                {
                    Decode(step);
                }
                else if (step.Kind == StepKind.Mixed)
                {
                    Mixed(step);
                }

                return;
            }
        }
    }

    /// <summary>One slot: the whole request on the caller's thread, under the gate, each token's callback awaited in turn.</summary>
    private async Task<GenerationResult> RunAloneAsync(Sequence sequence, Func<int, ValueTask>? onToken,
        CancellationToken cancellationToken)
    {
        sequence.Arrived = Stopwatch.GetTimestamp();
        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, typeof(ReferenceEngine));
            var admit = NextStep(sequence);
            Debug.Assert(admit.Kind == StepKind.Admit, "a free slot and a waiting request: the policy admits");
            Admit(sequence, admit.LengthBucket);
            if (onToken is not null)
            {
                await onToken(sequence.Tokens[0]);
            }

            sequence.FirstToken = Stopwatch.GetTimestamp();
            while (!sequence.Done)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Decode(NextStep(null));
                if (onToken is not null)
                {
                    await onToken(sequence.Tokens[sequence.Produced - 1]);
                }
            }

            return sequence.Result(Stopwatch.GetTimestamp());
        }
        finally
        {
            Drop(sequence, null);
            _gate.Release();
        }
    }

    /// <summary>Hands the tokens of a sequence run by the loop to its caller's callback, in order, as they are published.</summary>
    private static async Task<GenerationResult> StreamAsync(Sequence sequence, Func<int, ValueTask> onToken)
    {
        var delivered = 0;
        try
        {
            while (true)
            {
                await sequence.Signal!.WaitAsync();
                var produced = Volatile.Read(ref sequence.Produced);
                while (delivered < produced)
                {
                    await onToken(sequence.Tokens[delivered++]);
                }

                if (sequence.Completion.Task.IsCompleted && delivered == Volatile.Read(ref sequence.Produced))
                {
                    break;
                }
            }
        }
        catch
        {
            sequence.Abandoned = true; // the loop drops it before its next step
            throw;
        }

        return await sequence.Completion.Task;
    }

    private void RunLoop()
    {
        while (true)
        {
            lock (_queueLock)
            {
                while (!_disposed && _waiting.Count == 0 && _inFlightCount == 0)
                {
                    Monitor.Wait(_queueLock);
                }
            }

            while (Volatile.Read(ref _pausing) > 0)
            {
                Thread.Sleep(1); // the gate is not fair: let a pause in at this iteration boundary
            }

            _gate.Wait();
            try
            {
                if (_disposed)
                {
                    FailAll(new ObjectDisposedException(nameof(ReferenceEngine)));
                    return;
                }

                Iterate();
            }
#pragma warning disable CA1031 // a failing kernel must fail the requests it runs, not kill the loop and hang every caller
            catch (Exception ex)
#pragma warning restore CA1031
            {
                FailAll(ex);
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    private ScheduledStep NextStep(Sequence? nextWaiting) =>
        _policy.Next(new SchedulerView(_inFlight.AsSpan(0, _inFlightCount), nextWaiting, _freeSlotCount));

    /// <summary>The policy's next step with the head of the queue, and for an admission (or a chunked join) that head, taken from the
    /// queue under one lock (another replica's loop may share the queue).</summary>
    private (ScheduledStep Step, Sequence? Next) NextStepOrAdmission()
    {
        lock (_queueLock)
        {
            var step = NextStep(_waiting.TryPeek(out var head) ? head : null);
            return step.Kind is StepKind.Admit or StepKind.Join ? (step, _waiting.Dequeue()) : (step, null);
        }
    }

    /// <summary>Takes a sequence out of flight (cancelled, abandoned or failed) and frees its slot; a no-op if it is not in flight.</summary>
    private void Drop(Sequence sequence, Exception? failure)
    {
        var r = Array.IndexOf(_inFlight, sequence, 0, _inFlightCount);
        if (r >= 0)
        {
            Array.Copy(_inFlight, r + 1, _inFlight, r, _inFlightCount - r - 1);
            _inFlight[--_inFlightCount] = null!;
        }

        if (sequence.Slot >= 0)
        {
            _freeSlots[_freeSlotCount++] = sequence.Slot;
            sequence.Slot = -1;
        }

        if (failure is not null)
        {
            sequence.Fail(failure);
        }
    }

    private void FailAll(Exception failure)
    {
        while (_inFlightCount > 0)
        {
            Drop(_inFlight[_inFlightCount - 1], failure);
        }

        lock (_queueLock)
        {
            while (_waiting.TryDequeue(out var waiting))
            {
                waiting.Fail(failure);
            }
        }
    }

    private sealed class Resumer(SemaphoreSlim gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}
