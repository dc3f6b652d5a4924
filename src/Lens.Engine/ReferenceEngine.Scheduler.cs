using System.Diagnostics;
using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// The continuous-batching scheduler (method.md, "Batched serving"; vLLM and NxD Inference on Neuron). At most
/// <c>max_num_seqs</c> sequences are in flight; more requests wait, first come first served. Each iteration:
/// <list type="number">
/// <item>while a request waits and a slot is free, it is admitted and its prefill runs alone at <c>pre(I)</c>; its first token is
/// emitted when that prefill ends (a request with <c>O = 1</c> is then done and frees its slot);</item>
/// <item>if sequences are in flight, one decode step runs for all of them at <c>(B, D)</c>; each gets one token, emitted when the
/// step ends; a sequence that has its <c>O</c> tokens leaves after the step and frees its slot.</item>
/// </list>
/// With several slots the iterations run on one dedicated thread, fed by every caller; callers receive their tokens through
/// <see cref="Sequence.Signal"/> on their own thread, so a slow consumer never holds up the batch. With one slot
/// (batch buckets <c>[1]</c>) an iteration is "admit the head of the queue and run it to its end", so the caller runs it on its own
/// thread under the engine's gate (FIFO) and awaits each token's callback before the next step, exactly as before batching.
/// </summary>
public sealed partial class ReferenceEngine
{
    private const int StepLogCapacity = 8192;

    private readonly object _queueLock = new();
    private readonly Queue<Sequence> _waiting = new();
    private readonly Sequence[] _inFlight; // admission order; _inFlightCount of them
    private readonly int[] _freeSlots;
    private readonly bool[] _rowMoved;
    private readonly BatchStepTrace[] _stepLog = new BatchStepTrace[StepLogCapacity];
    private int _inFlightCount, _freeSlotCount, _pausing;
    private Thread? _loop;

    /// <summary>Requests submitted and not yet admitted (always 0 with one slot: callers wait for the engine instead).</summary>
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

    /// <summary>
    /// The decode steps from engine step <paramref name="index"/> on (see <see cref="EngineCounters.DecodeSteps"/>), oldest first;
    /// only the newest 8,192 steps are kept.
    /// </summary>
    public IReadOnlyList<BatchStepTrace> StepsSince(long index)
    {
        lock (_stepLog)
        {
            var end = _decodeSteps;
            var start = Math.Max(Math.Max(0, index), end - StepLogCapacity);
            var steps = new BatchStepTrace[Math.Max(0, end - start)];
            for (var i = 0; i < steps.Length; i++)
            {
                steps[i] = _stepLog[(start + i) % StepLogCapacity];
            }

            return steps;
        }
    }

    /// <summary>
    /// Holds the scheduler between iterations until the result is disposed: requests submitted meanwhile wait, and are admitted
    /// together (up to <c>max_num_seqs</c>, in order) when it resumes; a group released at once, as the profiler's. Also a way to
    /// take exact measurements of admission and batching in tests.
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

    private void StartScheduler()
    {
        if (MaxNumSeqs == 1)
        {
            return;
        }

        _loop = new Thread(RunLoop) { IsBackground = true, Name = $"lens-engine {Profile.Name}" };
        _loop.Start();
    }

    private Task<GenerationResult> SubmitAsync(IReadOnlyList<int>? prompt, int inputLength, int outputTokens,
        Func<int, ValueTask>? onToken, CancellationToken cancellationToken)
    {
        var sequence = new Sequence(prompt, inputLength, outputTokens, streamed: _loop is not null && onToken is not null,
            cancellationToken);
        if (_loop is null)
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

    /// <summary>One slot: the whole request on the caller's thread, under the gate, each token's callback awaited in turn.</summary>
    private async Task<GenerationResult> RunAloneAsync(Sequence sequence, Func<int, ValueTask>? onToken,
        CancellationToken cancellationToken)
    {
        sequence.Arrived = Stopwatch.GetTimestamp();
        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Admit(sequence);
            if (onToken is not null)
            {
                await onToken(sequence.Tokens[0]);
            }

            sequence.FirstToken = Stopwatch.GetTimestamp();
            while (!sequence.Done)
            {
                cancellationToken.ThrowIfCancellationRequested();
                DecodeIteration();
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
    private async Task<GenerationResult> StreamAsync(Sequence sequence, Func<int, ValueTask> onToken)
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

    /// <summary>One scheduler iteration: drop cancelled sequences, admit while a request waits and a slot is free, one decode step.</summary>
    private void Iterate()
    {
        for (var r = _inFlightCount - 1; r >= 0; r--)
        {
            var sequence = _inFlight[r];
            if (sequence.Abandoned || sequence.Cancellation.IsCancellationRequested)
            {
                Drop(sequence, new OperationCanceledException(sequence.Cancellation));
            }
        }

        while (_freeSlotCount > 0 && NextWaiting() is { } next)
        {
            if (next.Cancellation.IsCancellationRequested)
            {
                next.Fail(new OperationCanceledException(next.Cancellation));
                continue;
            }

            Admit(next);
        }

        if (_inFlightCount > 0)
        {
            DecodeIteration();
        }
    }

    private Sequence? NextWaiting()
    {
        lock (_queueLock)
        {
            return _waiting.TryDequeue(out var next) ? next : null;
        }
    }

    /// <summary>Takes a slot, runs the prefill alone and emits the first token; a sequence with more to come goes in flight.</summary>
    private void Admit(Sequence sequence)
    {
        sequence.Slot = _freeSlots[--_freeSlotCount];
        sequence.Admitted = Stopwatch.GetTimestamp();
        var input = sequence.InputLength;
        for (var i = 0; i < input; i++)
        {
            _prompt[i] = sequence.Prompt is null ? SyntheticToken(i) : sequence.Prompt[i];
        }

        var prefillIndex = Buckets.PrefillIndex(input);
        var token = Prefill(input, prefillIndex, sequence.Slot, out var shadow);
        var end = Stopwatch.GetTimestamp();
        var edge = _prefillEdges[prefillIndex];
        sequence.PrefillTrace = new PrefillTrace(new BucketId(BucketKind.Prefill, edge), edge, shadow,
            Stopwatch.GetElapsedTime(sequence.Admitted, end).TotalMilliseconds);
        sequence.FirstToken = end;
        sequence.Tokens[0] = token;
        sequence.Publish(1);
        if (sequence.Done)
        {
            Retire(sequence);
        }
        else
        {
            _inFlight[_inFlightCount++] = sequence;
        }
    }

    /// <summary>
    /// One decode step for every sequence in flight at <c>B</c> = the smallest batch bucket at or above their number and
    /// <c>D</c> = the smallest decode bucket at or above the longest of them after this step's append; rows whose cache lives in
    /// a smaller bucket's buffer (D grew) are copied up first, a sequence's first step takes its prefill's KV. Then every row
    /// gets its token and finished sequences leave, in admission order.
    /// </summary>
    private void DecodeIteration()
    {
        var rows = _inFlightCount;
        var batch = BatchBucket(rows);
        var j = 0;
        for (var r = 0; r < rows; r++)
        {
            var sequence = _inFlight[r];
            j = Math.Max(j, Buckets.DecodeIndex(Buckets.StepLength(sequence.InputLength, sequence.Produced)));
        }

        var started = Stopwatch.GetTimestamp();
        var moves = 0;
        for (var r = 0; r < rows; r++)
        {
            var sequence = _inFlight[r];
            var moved = false;
            if (sequence.CacheBucket < 0)
            {
                HandOff(sequence.Slot, sequence.InputLength, sequence.PrefillTrace.PaddedLength, j);
            }
            else if (sequence.CacheBucket != j)
            {
                MoveCache(sequence.Slot, sequence.CacheBucket, j);
                moved = true;
                sequence.CacheMoves++;
                moves++;
            }

            sequence.CacheBucket = j;
            _rowMoved[r] = moved;
            var k = sequence.Produced;
            SetRow(r, sequence.Slot, sequence.InputLength + k - 1, sequence.Tokens[k - 1]);
        }

        for (var r = rows; r < batch; r++)
        {
            SetRow(r, _padSlot, 0, 0);
        }

        DecodeBatch(batch, rows, j, moves, started, out var shadow, out var index);
        var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var bucket = new BucketId(BucketKind.Decode, _decodeEdges[j]);
        var kept = 0;
        for (var r = 0; r < rows; r++)
        {
            var sequence = _inFlight[r];
            var k = sequence.Produced;
            sequence.Tokens[k] = _rowToken[r];
            sequence.Steps[k - 1] = new DecodeStepTrace(k, sequence.InputLength + k, bucket, _spans[j], _rowMoved[r], shadow, ms, batch,
                rows, index);
            sequence.Publish(k + 1);
            if (sequence.Done)
            {
                Retire(sequence);
            }
            else
            {
                _inFlight[kept++] = sequence;
            }
        }

        Array.Clear(_inFlight, kept, rows - kept);
        _inFlightCount = kept;
    }

    /// <summary>The smallest batch bucket at or above <paramref name="rows"/>.</summary>
    private int BatchBucket(int rows)
    {
        foreach (var edge in _batchEdges)
        {
            if (edge >= rows)
            {
                return edge;
            }
        }

        throw new UnreachableException($"{rows} sequences in flight, above max_num_seqs {MaxNumSeqs}");
    }

    private void RecordStep(in BatchStepTrace step)
    {
        lock (_stepLog)
        {
            _stepLog[step.Index % StepLogCapacity] = step;
        }
    }

    /// <summary>A finished sequence frees its slot and completes.</summary>
    private void Retire(Sequence sequence)
    {
        _freeSlots[_freeSlotCount++] = sequence.Slot;
        sequence.Slot = -1;
        _requests++;
        sequence.Complete(Stopwatch.GetTimestamp());
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

    /// <summary>One request from submission to its last token: its tokens and trace are written by the scheduler only.</summary>
    private sealed class Sequence(IReadOnlyList<int>? prompt, int inputLength, int outputLength, bool streamed,
        CancellationToken cancellation)
    {
        public readonly int[] Tokens = new int[outputLength];
        public readonly DecodeStepTrace[] Steps = new DecodeStepTrace[outputLength - 1];
        public readonly TaskCompletionSource<GenerationResult> Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Released once per published token and once at the end, when a caller streams from the loop.</summary>
        public readonly SemaphoreSlim? Signal = streamed ? new SemaphoreSlim(0) : null;

        public int Produced; // tokens that exist; written with a release fence after the token itself
        public int Slot = -1, CacheBucket = -1, CacheMoves;
        public long Arrived, Admitted, FirstToken;
        public PrefillTrace PrefillTrace;
        public volatile bool Abandoned;

        public IReadOnlyList<int>? Prompt { get; } = prompt;

        public int InputLength { get; } = inputLength;

        public CancellationToken Cancellation { get; } = cancellation;

        public bool Done => Produced == Tokens.Length;

        public void Publish(int produced)
        {
            Volatile.Write(ref Produced, produced);
            Signal?.Release();
        }

        public GenerationResult Result(long finished) => new(Tokens, InputLength, PrefillTrace, Steps, CacheMoves,
            Stopwatch.GetElapsedTime(Admitted, FirstToken).TotalMilliseconds, Stopwatch.GetElapsedTime(Admitted, finished).TotalMilliseconds,
            Stopwatch.GetElapsedTime(Arrived, Admitted).TotalMilliseconds);

        public void Complete(long finished)
        {
            Completion.TrySetResult(Result(finished));
            Signal?.Release();
        }

        public void Fail(Exception failure)
        {
            if (failure is OperationCanceledException cancelled)
            {
                Completion.TrySetCanceled(cancelled.CancellationToken);
            }
            else
            {
                Completion.TrySetException(failure);
            }

            Signal?.Release();
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
