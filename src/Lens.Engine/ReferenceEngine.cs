using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// The built-in bucketed reference engine (architecture.md, layer 2): a decoder-only, Llama-like transformer with random seeded
/// weights, run on the CPU with static shapes per bucket, as an NPU runs compiled graphs, and served as serving engines are
/// (vLLM: scheduler / model runner / cache engine):
/// <list type="bullet">
/// <item><see cref="ModelRunner"/>, the math: a prompt of length <c>I</c> is padded to <c>pre(I)</c> and all padded rows are
/// computed; a prefill always runs alone (context batch 1); a decode step runs at <c>(B, D)</c>, all <c>B</c> rows computed
/// (padded rows too, their results discarded), each row attending over all of <c>D</c>'s positions of its own KV buffer, masked
/// beyond its real length, so a step's cost is flat inside a bucket;</item>
/// <item><see cref="KvCache"/>: each sequence slot has its own KV buffer per decode bucket; when the batch's <c>D</c> changes
/// every row's cache is copied into the new bucket's buffer; a prefill's KV is handed into the buffer of its first step;</item>
/// <item><see cref="Scheduler"/> with <see cref="PrefillFirstPolicy"/> (method.md, "Batched serving", padded execution type):
/// continuous batching, at most <c>max_num_seqs</c> in flight, first come first served, prefill first, then one decode step at
/// <c>B</c> = the smallest batch bucket <c>&gt;=</c> the sequences in flight and <c>D</c> = the smallest decode bucket
/// <c>&gt;=</c> the longest of them after this step's append; with one batch bucket of 1, requests run one at a time on the
/// caller's thread, as before batching;</item>
/// <item>the profile's scheduling policy (method.md, "Scheduling policies"): besides prefill-first padded above,
/// <see cref="PagedPolicy"/> (prefill-first with paged execution: a decode step at <c>(B, blocks bucket)</c>, each row attending
/// over its own real blocks and the padding blocks up to the bucket attended too; a request admitted only when its
/// <c>ceil((I + O) / block_size)</c> blocks fit beside those reserved in flight) and <see cref="ChunkedPolicy"/> (chunked prefill:
/// mixed steps of decodes and prompt chunks under a token budget, each one graph at <c>(T, K)</c>, a row per token padded to the
/// token bucket, attending over the context bucket's buffer); the step log names each step's kind and cell
/// (<see cref="BatchStepTrace.Row"/>, <see cref="BatchStepTrace.Column"/>);</item>
/// <item><see cref="SlowdownHook"/>: a time multiplier per bucket or cell, each of its steps stretched to m times its own time on both paths;</item>
/// <item><see cref="EngineWarmup"/> and <see cref="EngineWork"/> (the counters) and <see cref="StepLog"/>.</item>
/// </list>
/// Greedy argmax, always exactly <c>O</c> tokens (no end-of-sequence). All buffers are allocated once, at creation; a decode step
/// allocates nothing (with one thread). Every bucket is warmed up at creation unless asked not to.
/// </summary>
public sealed class ReferenceEngine : IDisposable, ICompletionModel
{
    private readonly int[] _batchEdges;
    private readonly ModelRunner _runner;
    private readonly SlowdownHook _slowdown;
    private readonly EngineWork _work = new();
    private readonly StepLog _log = new();
    private readonly EngineWarmup _warmup;
    private readonly Scheduler _scheduler;

    private ReferenceEngine(EngineProfile profile, BucketSet buckets)
    {
        Profile = profile;
        Buckets = buckets;
        Policy = profile.EffectivePolicy;
        _batchEdges = [.. profile.BatchBuckets];
        var chunked = Policy.Scheduler == SchedulerKind.Chunked;
        var paged = Policy.Execution == ExecutionKind.Paged;
        int[] rowEdges = chunked ? [.. Policy.TokenBuckets] : _batchEdges;
        var slots = profile.MaxNumSeqs;
        var pagedSpan = paged ? EnginePolicy.PagedSpan(Policy, buckets) : 0;
        var cacheBuckets = paged ? new BucketSet(buckets.Prefill, [pagedSpan], buckets.Convention) : buckets;
        var maxPosition = Math.Max(paged ? pagedSpan : buckets.MaxSequence, buckets.MaxPrompt) + 2;
        var cache = new KvCache(cacheBuckets, profile.Layers * profile.KvHeads * profile.HeadDim, slots);
        _runner = new ModelRunner(profile, maxPosition, rowEdges[^1], buckets.MaxPrompt, cache.MaxSpan);
        _slowdown = new SlowdownHook(buckets, profile.Slowdown, _batchEdges);
        var executor = new StepExecutor(_runner, cache, _slowdown, _work, buckets, Policy, rowEdges);
        _warmup = new EngineWarmup(executor, cache, _log);
        ISchedulingPolicy scheduling = chunked ? new ChunkedPolicy(buckets, Policy)
            : paged ? new PagedPolicy(buckets, _batchEdges, Policy.BlockSize)
            : new PrefillFirstPolicy(buckets, _batchEdges);
        _scheduler = new Scheduler(executor, scheduling, slots, _work, _log, profile.Name);
    }

    /// <summary>The scheduling policy the engine serves by (the profile's; prefill-first padded when it names none).</summary>
    public SchedulingPolicy Policy { get; }

    /// <summary>The longest request served, <c>I + O</c> at most (the policy's <c>max_model_len</c>).</summary>
    public int MaxModelLen => EnginePolicy.MaxModelLen(Policy, Buckets);

    /// <summary>The longest prompt it serves (<see cref="EnginePolicy.MaxPrompt"/>).</summary>
    public int MaxPrompt => EnginePolicy.MaxPrompt(Policy, Buckets);

    /// <summary>Whether a request of <paramref name="inputLength"/> prompt and <paramref name="outputLength"/> output tokens can be
    /// served under the policy; null when it can, else the reason with the allowed range.</summary>
    public string? CheckRequest(int inputLength, int outputLength) => EnginePolicy.CheckRequest(Policy, Buckets, inputLength, outputLength);

    /// <summary>The profile the engine was created from (its slowdowns as at creation; see <see cref="GetSlowdown"/>).</summary>
    public EngineProfile Profile { get; }

    string ICompletionModel.Name => Profile.Name;

    int ICompletionModel.Vocab => Profile.Vocab;

    /// <summary>The compiled bucket sets and decode convention.</summary>
    public BucketSet Buckets { get; }

    /// <summary>The compiled decode batch sizes, ascending (a copy).</summary>
    public IReadOnlyList<int> BatchBuckets => [.. _batchEdges];

    /// <summary>
    /// The buckets a batched profile, plan, fit and simulation of this engine use, on its policy's axes: the length buckets with the
    /// batch buckets (paged: the decode axis in KV blocks), or under chunked prefill with the token buckets as the step table's rows.
    /// </summary>
    public BucketSet ServingBuckets => Buckets.WithBatch(Policy.Scheduler == SchedulerKind.Chunked ? Policy.TokenBuckets : _batchEdges);

    /// <summary>The most sequences in flight at once: the largest batch bucket, or the chunked policy's <c>maxNumSeqs</c>.</summary>
    public int MaxNumSeqs => Profile.MaxNumSeqs;

    /// <summary>Exact counts of the work done so far (warm-up included).</summary>
    public EngineCounters Counters => _work.Snapshot();

    /// <summary>Requests submitted and not yet admitted (always 0 with one slot: callers wait for the engine instead).</summary>
    public int WaitingRequests => _scheduler.WaitingRequests;

    /// <summary>
    /// Validates the profile, allocates every buffer and weight, and (unless <paramref name="warmup"/> is false) warms up every bucket;
    /// then, with more than one sequence allowed in flight, starts the scheduler loop.
    /// </summary>
    public static ReferenceEngine Create(EngineProfile profile, bool warmup = true)
    {
        ArgumentNullException.ThrowIfNull(profile);
        var buckets = profile.Validate(string.IsNullOrWhiteSpace(profile.Name) ? "engine profile" : $"engine profile '{profile.Name}'");
        var engine = new ReferenceEngine(profile, buckets);
        if (warmup)
        {
            engine.Warmup();
        }

        engine._scheduler.Start();
        return engine;
    }

    /// <summary>The deterministic prompt token of position <paramref name="index"/>, used by the length-only overload.</summary>
    public int SyntheticToken(int index) => _runner.SyntheticToken(index);

    /// <summary>The deterministic prompt of <paramref name="length"/> tokens used by the length-only overload.</summary>
    public int[] SyntheticPrompt(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var ids = new int[length];
        for (var i = 0; i < length; i++)
        {
            ids[i] = SyntheticToken(i);
        }

        return ids;
    }

    /// <summary>
    /// The time multiplier of one bucket from now on (1 = none, up to 100): each of its steps waits after computing until it has
    /// taken <c>m</c> times its own time, so tokens do not change. A decode bucket of batch 1
    /// (<c>decode-N</c>) sets the length bucket at every batch bucket; of a larger batch (<c>decode-N-bB</c>), that one cell.
    /// </summary>
    public void SetSlowdown(BucketId bucket, double multiplier) => _slowdown.Set(bucket, multiplier);

    /// <summary>
    /// The time multiplier of one cost cell from now on: a prefill bucket, or a decode (length bucket, batch bucket) cell exactly as
    /// named, batch 1 included (only that cell, unlike <see cref="SetSlowdown"/>).
    /// </summary>
    public void SetCellSlowdown(BucketId cell, double multiplier) => _slowdown.Set(cell, multiplier, cell: true);

    /// <summary>The current time multiplier of one prefill bucket or decode cell (<c>decode-N</c>: the cell at batch 1).</summary>
    public double GetSlowdown(BucketId bucket) => _slowdown.Get(bucket);

    /// <summary>
    /// Brings the engine to its steady speed before anything is timed (<see cref="EngineWarmup"/>): stabilising rounds until one is
    /// no faster than the best before (at most <paramref name="maxRounds"/>), then every bucket once. Sequences in flight are not
    /// disturbed. Returns the number of stabilising rounds.
    /// </summary>
    public int Warmup(int maxRounds = 200)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxRounds);
        return _scheduler.Exclusive(() => _warmup.Run(maxRounds));
    }

    /// <summary>
    /// Generates exactly <paramref name="outputTokens"/> tokens after <paramref name="promptTokenIds"/>; calls
    /// <paramref name="onToken"/> with each token as soon as it exists (the first right after prefill: TTFT), in order. Completes
    /// when the request has all its tokens; concurrent calls share decode steps when the profile has batch buckets above 1.
    /// Throws <see cref="RequestOutOfRangeException"/> for lengths outside the buckets, <see cref="ArgumentOutOfRangeException"/> for
    /// token ids outside the vocabulary.
    /// </summary>
    public Task<GenerationResult> GenerateAsync(IReadOnlyList<int> promptTokenIds, int outputTokens, Func<int, ValueTask>? onToken = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptTokenIds);
        EnsureRequest(promptTokenIds.Count, outputTokens);
        var vocab = _runner.Vocab;
        for (var i = 0; i < promptTokenIds.Count; i++)
        {
            if ((uint)promptTokenIds[i] >= (uint)vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(promptTokenIds), promptTokenIds[i],
                    $"prompt token #{i} is {promptTokenIds[i]}; token ids must be within 0..{vocab - 1}");
            }
        }

        return _scheduler.SubmitAsync(promptTokenIds, promptTokenIds.Count, outputTokens, onToken, cancellationToken);
    }

    /// <summary>As <see cref="GenerateAsync(IReadOnlyList{int}, int, Func{int, ValueTask}?, CancellationToken)"/> with the
    /// deterministic prompt <see cref="SyntheticPrompt"/> of <paramref name="promptLength"/> tokens.</summary>
    public Task<GenerationResult> GenerateAsync(int promptLength, int outputTokens, Func<int, ValueTask>? onToken = null,
        CancellationToken cancellationToken = default)
    {
        EnsureRequest(promptLength, outputTokens);
        return _scheduler.SubmitAsync(null, promptLength, outputTokens, onToken, cancellationToken);
    }

    /// <summary>
    /// The decode (or, under chunked prefill, mixed) steps from engine step <paramref name="index"/> on (see <see cref="EngineCounters.DecodeSteps"/>), oldest first;
    /// only the newest 8,192 steps are kept.
    /// </summary>
    public IReadOnlyList<BatchStepTrace> StepsSince(long index) => _log.Since(index);

    /// <summary>
    /// Holds the scheduler between iterations until the result is disposed: requests submitted meanwhile wait, and are admitted
    /// together (up to <c>max_num_seqs</c>, in order) when it resumes; a group released at once, as the profiler's. Also a way to
    /// take exact measurements of admission and batching in tests.
    /// </summary>
    public IDisposable Pause() => _scheduler.Pause();

    public void Dispose() => _scheduler.Dispose();

    private void EnsureRequest(int inputLength, int outputLength)
    {
        if (CheckRequest(inputLength, outputLength) is { } reason)
        {
            throw new RequestOutOfRangeException(reason);
        }
    }
}
