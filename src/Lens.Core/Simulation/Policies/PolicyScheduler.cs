namespace Lens.Core;

/// <summary>
/// One scheduler definition per policy, step by step, written from method.md ("Batched serving", "Scheduling policies: every stack's
/// scheduler, one fit for all"). It runs requests on one replica, asks <see cref="IStepCosts"/> what each step costs, and reports every
/// step to an <see cref="IStepSink"/> with its cost cell and whom it served. This is the reference the fast serving simulation is
/// tested against, and the seam the policy-independent fit counts steps with (<see cref="StepCounts"/>).
/// <list type="bullet">
/// <item><b>prefill-first</b> (padded or paged): at most <see cref="MaxNumSeqs"/> sequences in flight; each iteration, while a request
/// has arrived (first come first served) and a slot is free, it is admitted and its prefill runs alone at cell <c>A[pre(I)]</c>
/// (its first token at the step's TTFT); then, if sequences are in flight, one decode step for all <c>n</c> of them at row
/// <c>bat(n)</c> and the column of the execution type: padded, <c>dec(longest length after the append)</c>; paged,
/// <c>blocks bucket(sum of ceil(length after the append / block_size))</c>. A sequence with its <c>O</c> tokens leaves after the step.
/// Paged execution admits the queue's head only when its whole need <c>ceil((I + O) / block_size)</c> fits beside the blocks reserved
/// by those in flight (capacity: the largest block bucket); otherwise the head, and everyone behind it, waits. The length after the
/// append of decode step <c>k</c> is <see cref="BucketSet.StepLength"/> (<c>I + k</c>, one less before-append).</item>
/// <item><b>chunked</b>: every step has the budget <c>max_num_batched_tokens</c>. First every decoding sequence gets one token; then,
/// in admission order, sequences with a partly processed prompt, then (while a slot is free) requests that have arrived, each get a
/// chunk <c>min(prompt tokens left, budget left)</c> until the budget is spent. The step's cell is <c>(T, K)</c>: the smallest token
/// bucket at or above its tokens and the smallest context bucket at or above the longest context after the step (prompt tokens
/// processed so far; <c>I + k</c> after decode step <c>k</c>). A prompt that completes emits its first token when the step ends.</item>
/// </list>
/// Arrival order is first come first served (equal times in the list's order). A replica with nothing in flight waits for the next
/// arrival. Plain and slow on purpose (allocations per step); immutable, so one instance may run many lists.
/// </summary>
public sealed class PolicyScheduler
{
    private readonly int[] _tokenBuckets;

    private PolicyScheduler(BucketSet buckets, SchedulingPolicy policy)
    {
        Buckets = buckets;
        Policy = policy;
        Cells = new StepCells(buckets, policy);
        _tokenBuckets = policy.TokenBuckets.IsDefault ? [] : [.. policy.TokenBuckets];
    }

    public BucketSet Buckets { get; }

    public SchedulingPolicy Policy { get; }

    /// <summary>The cost cells the steps are reported in.</summary>
    public StepCells Cells { get; }

    /// <summary>Sequences in flight at most: the policy's <c>max_num_seqs</c> (chunked) or the largest batch bucket (prefill-first).</summary>
    public int MaxNumSeqs => Policy.Scheduler == SchedulerKind.Chunked ? Policy.MaxNumSeqs : Buckets.MaxBatch;

    /// <summary>Paged: KV blocks of a replica, the largest block bucket; 0 otherwise.</summary>
    public int KvCapacityBlocks => Policy.Execution == ExecutionKind.Paged ? Buckets.MaxSequence : 0;

    /// <summary>The scheduler of <paramref name="buckets"/> under <paramref name="policy"/>; throws <see cref="ArgumentException"/>
    /// when the policy is invalid or cannot run on these buckets.</summary>
    public static PolicyScheduler For(BucketSet buckets, SchedulingPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(policy);
        if (Problem(buckets, policy) is { } problem)
        {
            throw new ArgumentException($"scheduling policy: {problem}");
        }

        return new PolicyScheduler(buckets, policy);
    }

    /// <summary>The scheduler of a fitted model's buckets and policy.</summary>
    public static PolicyScheduler For(DeploymentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return For(model.Buckets, model.Policy);
    }

    /// <summary>Why <paramref name="policy"/> cannot schedule on <paramref name="buckets"/>, or null.</summary>
    public static string? Problem(BucketSet buckets, SchedulingPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.Check() is { } problem)
        {
            return problem;
        }

        if (buckets.DecodeInBlocks && policy.Execution != ExecutionKind.Paged)
        {
            return "the decode buckets count KV blocks, which only paged execution reads";
        }

        if (policy.Scheduler == SchedulerKind.Chunked)
        {
            if (policy.MaxNumSeqs > policy.MaxNumBatchedTokens)
            {
                return $"maxNumSeqs {policy.MaxNumSeqs} is above maxNumBatchedTokens {policy.MaxNumBatchedTokens}: every decoding sequence " +
                       "needs a token of the step's budget (vLLM refuses the same)";
            }

            if (!buckets.Batch.AsSpan().SequenceEqual(policy.TokenBuckets.AsSpan()))
            {
                return $"the step table's rows ({string.Join(',', buckets.Batch)}) are not the token buckets ({string.Join(',', policy.TokenBuckets)}); " +
                       "a chunked model's rows are its token buckets";
            }
        }

        return null;
    }

    /// <summary>
    /// Whether a request of <c>I</c> prompt and <c>O</c> output tokens can ever be served: null when it can, else the reason with the
    /// allowed range. Prefill-first padded: <see cref="BucketSet.CheckRequest"/>. Paged: <c>I</c> within the prefill buckets and
    /// <c>I + O</c> at most <c>max_model_len</c> when set, and never above the KV capacity (largest block bucket times the block size).
    /// Chunked: <c>I + O</c> at most <c>max_model_len</c> when set, and never above the largest context bucket.
    /// </summary>
    public string? CheckRequest(int inputLength, int outputLength)
    {
        if (Policy.IsDefault || inputLength < 1 || outputLength < 1 ||
            (Policy.Scheduler == SchedulerKind.PrefillFirst && inputLength > Buckets.MaxPrompt))
        {
            return Buckets.CheckRequest(inputLength, outputLength);
        }

        var total = (long)inputLength + outputLength;
        if (Policy.MaxModelLen > 0 && total > Policy.MaxModelLen)
        {
            return $"input length {inputLength} + output length {outputLength} = {total} is above max_model_len {Policy.MaxModelLen} " +
                   $"(allowed I + O <= {MaxSequence})";
        }

        if (total > MaxSequence)
        {
            return Policy.Execution == ExecutionKind.Paged
                ? $"input length {inputLength} + output length {outputLength} = {total} needs {BlocksNeeded(inputLength, outputLength)} KV blocks of " +
                  $"{Policy.BlockSize} tokens, above the KV capacity of {KvCapacityBlocks} blocks (allowed I + O <= {MaxSequence})"
                : $"input length {inputLength} + output length {outputLength} = {total} is above the longest context bucket " +
                  $"{Buckets.MaxSequence} (allowed I + O <= {MaxSequence})";
        }

        return null;
    }

    /// <summary>The bound on <c>I + O</c> under the policy.</summary>
    public int MaxSequence
    {
        get
        {
            var room = Policy.Execution == ExecutionKind.Paged ? (int)Math.Min(int.MaxValue, (long)KvCapacityBlocks * Policy.BlockSize) : Buckets.MaxSequence;
            return Policy.MaxModelLen > 0 && !Policy.IsDefault ? Math.Min(room, Policy.MaxModelLen) : room;
        }
    }

    /// <summary>Paged: the KV blocks a request reserves when admitted, <c>ceil((I + O) / block_size)</c>.</summary>
    public int BlocksNeeded(int inputLength, int outputLength) =>
        (int)(((long)inputLength + outputLength + Policy.BlockSize - 1) / Policy.BlockSize);

    /// <summary>Index of the smallest token bucket at or above <paramref name="tokens"/> (chunked), or -1.</summary>
    public int TokenIndex(int tokens) => FirstAtOrAbove(_tokenBuckets, tokens);

    /// <summary>
    /// Runs <paramref name="requests"/> on one idle replica from time 0 with <paramref name="costs"/> and reports every step to
    /// <paramref name="sink"/>. <paramref name="maxNumSeqs"/> defaults to <see cref="MaxNumSeqs"/> and may not exceed it. Throws
    /// <see cref="RequestOutOfRangeException"/> naming the (1-based) row of a request the policy can never serve.
    /// </summary>
    public void Run(IReadOnlyList<TraceRequest> requests, IStepCosts costs, IStepSink sink, int? maxNumSeqs = null)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(costs);
        ArgumentNullException.ThrowIfNull(sink);
        var seqs = maxNumSeqs ?? MaxNumSeqs;
        if (seqs < 1 || seqs > MaxNumSeqs)
        {
            throw new ArgumentOutOfRangeException(nameof(maxNumSeqs), seqs, $"max_num_seqs {seqs} is outside 1..{MaxNumSeqs}");
        }

        for (var k = 0; k < requests.Count; k++)
        {
            var r = requests[k];
            if (!(r.ArrivalMs >= 0) || !double.IsFinite(r.ArrivalMs))
            {
                throw new RequestOutOfRangeException($"row {k + 1}: arrival {r.ArrivalMs} ms is not a finite time >= 0");
            }

            if (CheckRequest(r.InputLength, r.OutputLength) is { } reason)
            {
                throw new RequestOutOfRangeException($"row {k + 1}: {reason}");
            }
        }

        var order = Enumerable.Range(0, requests.Count).OrderBy(k => requests[k].ArrivalMs).ThenBy(k => k).ToArray();
        new Reference(this, requests, order, costs, sink, seqs).Run();
    }

    internal static int FirstAtOrAbove(int[] edges, int value)
    {
        var i = Array.BinarySearch(edges, value);
        i = i >= 0 ? i : ~i;
        return i == edges.Length ? -1 : i;
    }

    /// <summary>A sequence in flight on the reference replica.</summary>
    private sealed class Flight(int id, int blocks)
    {
        public int Id { get; } = id;

        public int Blocks { get; } = blocks;

        /// <summary>Prompt tokens processed.</summary>
        public int Prompt { get; set; }

        /// <summary>Tokens emitted (the first one included).</summary>
        public int Generated { get; set; }
    }

    /// <summary>The step-by-step definition, one replica.</summary>
    private sealed class Reference(PolicyScheduler owner, IReadOnlyList<TraceRequest> requests, int[] order, IStepCosts costs, IStepSink sink, int seqs)
    {
        private readonly List<Flight> _running = [];
        private readonly BucketSet _buckets = owner.Buckets;
        private readonly SchedulingPolicy _policy = owner.Policy;
        private readonly StepCells _cells = owner.Cells;
        private int _next;
        private int _reserved;
        private double _now;

        public void Run()
        {
            while (_next < order.Length || _running.Count > 0)
            {
                if (_running.Count == 0)
                {
                    _now = Math.Max(_now, requests[order[_next]].ArrivalMs);
                }

                if (_policy.Scheduler == SchedulerKind.Chunked)
                {
                    ChunkedStep();
                }
                else
                {
                    PrefillFirstIteration();
                }
            }
        }

        private bool HeadArrived => _next < order.Length && requests[order[_next]].ArrivalMs <= _now;

        private void PrefillFirstIteration()
        {
            while (_running.Count < seqs && HeadArrived && HeadFits())
            {
                var id = order[_next++];
                var r = requests[id];
                var blocks = _policy.Execution == ExecutionKind.Paged ? owner.BlocksNeeded(r.InputLength, r.OutputLength) : 0;
                var cell = _cells.Prefill(_buckets.PrefillIndex(r.InputLength));
                var ms = costs.StepMs(cell);
                int[] finished = r.OutputLength == 1 ? [id] : [];
                sink.Step(new ScheduledStep(cell, _now, _now + ms, _now + costs.FirstTokenMs(cell), r.InputLength, r.InputLength,
                    [new PromptChunk(id, r.InputLength)], [id], [], finished));
                _now += ms;
                if (r.OutputLength > 1)
                {
                    _reserved += blocks;
                    _running.Add(new Flight(id, blocks) { Prompt = r.InputLength, Generated = 1 });
                }
            }

            if (_running.Count == 0)
            {
                return;
            }

            // One decode step for everyone in flight: decode step k = Generated runs at length StepLength(I, k) after the append.
            long longest = 0, blocksInUse = 0;
            foreach (var f in _running)
            {
                var length = _buckets.StepLength(requests[f.Id].InputLength, f.Generated);
                longest = Math.Max(longest, length);
                blocksInUse += (length + _policy.BlockSize - 1) / Math.Max(1, _policy.BlockSize);
            }

            var measure = (int)(_policy.Execution == ExecutionKind.Paged ? blocksInUse : longest);
            var column = _buckets.DecodeIndex(measure);
            if (column < 0)
            {
                throw new InvalidOperationException($"a decode step of length {measure} has no column; the request checks should have refused it");
            }

            Decode(_cells.Step(_buckets.BatchIndex(_running.Count), column), _running.Count, measure);
        }

        private bool HeadFits()
        {
            if (_policy.Execution != ExecutionKind.Paged)
            {
                return true;
            }

            var r = requests[order[_next]];
            return _reserved + owner.BlocksNeeded(r.InputLength, r.OutputLength) <= owner.KvCapacityBlocks;
        }

        private void Decode(int cell, int tokens, int measure)
        {
            var ms = costs.StepMs(cell);
            var decode = _running.Select(f => f.Id).ToArray();
            var finished = _running.Where(f => f.Generated + 1 == requests[f.Id].OutputLength).Select(f => f.Id).ToArray();
            sink.Step(new ScheduledStep(cell, _now, _now + ms, _now + ms, tokens, measure, [], [], decode, finished));
            _now += ms;
            foreach (var f in _running)
            {
                f.Generated++;
            }

            Leave();
        }

        private void Leave()
        {
            for (var k = _running.Count - 1; k >= 0; k--)
            {
                var f = _running[k];
                if (f.Prompt == requests[f.Id].InputLength && f.Generated == requests[f.Id].OutputLength)
                {
                    _reserved -= f.Blocks;
                    _running.RemoveAt(k);
                }
            }
        }

        private void ChunkedStep()
        {
            var budget = _policy.MaxNumBatchedTokens;
            var context = 0;
            var decode = new List<int>();
            var prompt = new List<PromptChunk>();
            var first = new List<int>();
            var finished = new List<int>();

            // 1. Every decoding sequence gets one token (max_num_seqs <= the budget, so all do).
            foreach (var f in _running.Where(f => f.Prompt == requests[f.Id].InputLength))
            {
                decode.Add(f.Id);
                budget--;
                context = Math.Max(context, requests[f.Id].InputLength + f.Generated);
                if (f.Generated + 1 == requests[f.Id].OutputLength)
                {
                    finished.Add(f.Id);
                }
            }

            // 2. Partly processed prompts, in admission order, then 3. arrived requests while a slot is free.
            var chunked = new List<(Flight Flight, int Tokens)>();
            foreach (var f in _running.Where(f => f.Prompt < requests[f.Id].InputLength))
            {
                if (budget == 0)
                {
                    break;
                }

                var chunk = Math.Min(requests[f.Id].InputLength - f.Prompt, budget);
                chunked.Add((f, chunk));
                budget -= chunk;
            }

            while (budget > 0 && _running.Count < seqs && HeadArrived)
            {
                var f = new Flight(order[_next++], 0);
                _running.Add(f);
                var chunk = Math.Min(requests[f.Id].InputLength, budget);
                chunked.Add((f, chunk));
                budget -= chunk;
            }

            foreach (var (f, tokens) in chunked)
            {
                prompt.Add(new PromptChunk(f.Id, tokens));
                context = Math.Max(context, f.Prompt + tokens);
                if (f.Prompt + tokens == requests[f.Id].InputLength)
                {
                    first.Add(f.Id);
                    if (requests[f.Id].OutputLength == 1)
                    {
                        finished.Add(f.Id);
                    }
                }
            }

            var scheduled = _policy.MaxNumBatchedTokens - budget;
            var row = owner.TokenIndex(scheduled);
            var column = _buckets.DecodeIndex(context);
            if (row < 0 || column < 0)
            {
                throw new InvalidOperationException($"a step of {scheduled} tokens at context {context} has no cell; the checks should have refused it");
            }

            var cell = _cells.Step(row, column);
            var ms = costs.StepMs(cell);
            sink.Step(new ScheduledStep(cell, _now, _now + ms, _now + ms, scheduled, context, prompt, first, decode, finished));
            _now += ms;
            foreach (var f in _running.Where(f => f.Prompt == requests[f.Id].InputLength))
            {
                f.Generated++;
            }

            foreach (var (f, tokens) in chunked)
            {
                f.Prompt += tokens;
                if (f.Prompt == requests[f.Id].InputLength)
                {
                    f.Generated = 1;
                }
            }

            Leave();
        }
    }
}
