using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// The built-in bucketed reference engine (architecture.md, layer 2): a decoder-only, Llama-like transformer (RMSNorm,
/// grouped-query attention with rotary positions, SwiGLU MLP, LM head tied to the embedding) with random seeded weights, run on the
/// CPU with static shapes per bucket, as an NPU runs compiled graphs:
/// <list type="bullet">
/// <item>the prompt of length <c>I</c> is padded to <c>pre(I)</c> and all padded rows are computed (causal mask over the full
/// padded square); a prefill always runs alone (context batch 1);</item>
/// <item>a decode step runs at <c>(B, D)</c> (method.md, "Batched serving", padded execution type): <c>B</c> is the smallest batch
/// bucket <c>&gt;=</c> the sequences in flight, <c>D</c> the smallest decode bucket <c>&gt;=</c> the longest of them after this
/// step's append (step <c>k</c> of a sequence is at <c>StepLength(I, k)</c>, the profile's convention). All <c>B</c> rows are
/// computed (padded rows too, their results discarded); each row attends over all of <c>D</c>'s positions of its own KV buffer,
/// masked beyond its real length, so a step's cost is flat inside a bucket and steps at its edge (under the before-append
/// convention a buffer holds one more position, the token being appended);</item>
/// <item>each sequence has its own KV buffer per decode bucket; when the batch's <c>D</c> changes (it grows at an edge, or shrinks
/// when the longest sequence leaves), every row's cache is copied into the new bucket's buffer; a prefill's KV is copied into
/// the buffer of the sequence's first step;</item>
/// <item>greedy argmax, always exactly <c>O</c> tokens (no end-of-sequence).</item>
/// </list>
/// With one batch bucket of 1, requests run one at a time on the caller's thread, as before batching. Otherwise one scheduler
/// loop (its own thread) serves every caller: continuous batching, at most <c>max_num_seqs</c> in flight, first come first served
/// (see <c>ReferenceEngine.Scheduler.cs</c>). All buffers are allocated once, at creation; a decode step allocates nothing (with
/// one thread). Every bucket is warmed up at creation unless asked not to.
/// </summary>
public sealed partial class ReferenceEngine : IDisposable
{
    private const float NormEpsilon = 1e-5f;
    private const float RopeTheta = 10000f;

    private readonly int _layers, _hidden, _heads, _kvHeads, _headDim, _kvDim, _ffn, _vocab, _group, _threads;
    private readonly float _attentionScale;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ParallelOptions _parallel;

    // Weights.
    private readonly float[] _embedding; // vocab x hidden, also the LM head
    private readonly Layer[] _layerWeights;
    private readonly float[] _finalNorm;
    private readonly float[] _ropeCos, _ropeSin; // position x headDim/2

    // KV caches per sequence slot (max_num_seqs of them, then one for padded rows and warm-up) and decode bucket: layout
    // [layer][kvHead][headDim][span] (transposed, so that scoring a head over the bucket is headDim long vector operations of the
    // bucket's length). A slot's prefill writes its own staging buffer [layer][kvHead][headDim][P], handed off at its first step.
    private readonly float[][][] _cacheK, _cacheV;
    private readonly float[][] _prefillK, _prefillV;
    private readonly int _padSlot;
    private readonly int[] _spans;
    private readonly int[] _prefillEdges, _decodeEdges, _batchEdges; // copies: BucketSet.Prefill/Decode copy on every read

    // Decode rows of one step, B of them: row-major B x width, and each row's slot, position and input (then output) token.
    private readonly float[] _x, _xn, _q, _k, _v, _attn, _tmp, _gateBuf, _upBuf, _logits, _xLastIn, _xShadow, _ropeA, _ropeB, _sigmoid;
    private readonly int[] _rowSlot, _rowPosition, _rowToken;
    private readonly float[][] _scores; // one per thread, of the longest span

    // Prefill state, sized for the longest prefill bucket; a request uses exactly its padded length P.
    private readonly int[] _prompt;
    private readonly int[] _paddedIds;
    private readonly float[] _pX, _pXn, _pQ, _pKr, _pVr, _pA, _pT, _pG, _pU, _pSaved, _pShadow;

    // Slowdown (multiplier per bucket) and the fractional layer passes owed.
    private readonly double[] _prefillSlowdown, _decodeSlowdown;
    private readonly double[] _prefillCredit, _decodeCredit;

    private long _requests, _prefillPasses, _prefillRows, _decodeSteps, _attentionPositions, _cacheMoves, _cacheHandoffs, _shadowPasses;
    private long _paddedRows;
    private volatile bool _disposed;

    private ReferenceEngine(EngineProfile profile, BucketSet buckets)
    {
        Profile = profile;
        Buckets = buckets;
        _layers = profile.Layers;
        _hidden = profile.Hidden;
        _heads = profile.Heads;
        _kvHeads = profile.KvHeads;
        _headDim = profile.HeadDim;
        _kvDim = _kvHeads * _headDim;
        _ffn = profile.Ffn;
        _vocab = profile.Vocab;
        _group = _heads / _kvHeads;
        _threads = profile.Threads;
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = _threads };
        _attentionScale = 1f / MathF.Sqrt(_headDim);
        _batchEdges = [.. profile.BatchBuckets];
        var maxBatch = _batchEdges[^1];

        var random = new SplitMix(profile.Seed);
        _embedding = random.Uniform(_vocab * _hidden, 1f);
        _layerWeights = new Layer[_layers];
        for (var l = 0; l < _layers; l++)
        {
            _layerWeights[l] = new Layer(random, _hidden, _kvDim, _ffn);
        }

        _finalNorm = Ones(_hidden);

        var maxPosition = Math.Max(buckets.MaxSequence, buckets.MaxPrompt) + 2;
        var half = _headDim / 2;
        _ropeCos = new float[maxPosition * half];
        _ropeSin = new float[maxPosition * half];
        for (var pos = 0; pos < maxPosition; pos++)
        {
            for (var i = 0; i < half; i++)
            {
                var angle = pos * Math.Pow(RopeTheta, -2.0 * i / _headDim);
                _ropeCos[(pos * half) + i] = (float)Math.Cos(angle);
                _ropeSin[(pos * half) + i] = (float)Math.Sin(angle);
            }
        }

        var decode = buckets.Decode;
        _decodeEdges = [.. decode];
        _prefillEdges = [.. buckets.Prefill];
        _spans = new int[decode.Length];
        for (var j = 0; j < decode.Length; j++)
        {
            _spans[j] = decode[j] + (buckets.Convention == DecodeConvention.BeforeAppend ? 1 : 0);
        }

        var maxP = buckets.MaxPrompt;
        _padSlot = maxBatch;
        _cacheK = new float[maxBatch + 1][][];
        _cacheV = new float[maxBatch + 1][][];
        _prefillK = new float[maxBatch + 1][];
        _prefillV = new float[maxBatch + 1][];
        for (var slot = 0; slot <= maxBatch; slot++)
        {
            _cacheK[slot] = new float[decode.Length][];
            _cacheV[slot] = new float[decode.Length][];
            for (var j = 0; j < decode.Length; j++)
            {
                _cacheK[slot][j] = new float[_layers * _kvDim * _spans[j]];
                _cacheV[slot][j] = new float[_layers * _kvDim * _spans[j]];
            }

            _prefillK[slot] = new float[_layers * _kvDim * maxP];
            _prefillV[slot] = new float[_layers * _kvDim * maxP];
        }

        var maxScores = Math.Max(_spans[^1], maxP);
        _scores = new float[_threads][];
        for (var t = 0; t < _threads; t++)
        {
            _scores[t] = new float[maxScores];
        }

        _x = new float[maxBatch * _hidden];
        _xn = new float[maxBatch * _hidden];
        _q = new float[maxBatch * _hidden];
        _k = new float[maxBatch * _kvDim];
        _v = new float[maxBatch * _kvDim];
        _attn = new float[maxBatch * _hidden];
        _tmp = new float[maxBatch * _hidden];
        _gateBuf = new float[maxBatch * _ffn];
        _upBuf = new float[maxBatch * _ffn];
        _logits = new float[maxBatch * _vocab];
        _xLastIn = new float[maxBatch * _hidden];
        _xShadow = new float[maxBatch * _hidden];
        _rowSlot = new int[maxBatch];
        _rowPosition = new int[maxBatch];
        _rowToken = new int[maxBatch];
        _ropeA = new float[half];
        _ropeB = new float[half];
        _sigmoid = new float[4096];

        _prompt = new int[maxP];
        _paddedIds = new int[maxP];
        _pX = new float[maxP * _hidden];
        _pXn = new float[maxP * _hidden];
        _pQ = new float[maxP * _hidden];
        _pKr = new float[maxP * _kvDim];
        _pVr = new float[maxP * _kvDim];
        _pA = new float[maxP * _hidden];
        _pT = new float[maxP * _hidden];
        _pG = new float[maxP * _ffn];
        _pU = new float[maxP * _ffn];
        _pSaved = new float[maxP * _hidden];
        _pShadow = new float[maxP * _hidden];

        _prefillSlowdown = Enumerable.Repeat(1.0, buckets.Prefill.Length).ToArray();
        _decodeSlowdown = Enumerable.Repeat(1.0, decode.Length).ToArray();
        _prefillCredit = new double[buckets.Prefill.Length];
        _decodeCredit = new double[decode.Length];
        foreach (var (key, value) in profile.Slowdown ?? [])
        {
            SetSlowdown(BucketId.Parse(key), value);
        }

        _inFlight = new Sequence[maxBatch];
        _freeSlots = new int[maxBatch];
        for (var slot = 0; slot < maxBatch; slot++)
        {
            _freeSlots[slot] = maxBatch - 1 - slot; // slot 0 is taken first
        }

        _freeSlotCount = maxBatch;
        _rowMoved = new bool[maxBatch];
    }

    /// <summary>The profile the engine was created from (its slowdowns as at creation; see <see cref="GetSlowdown"/>).</summary>
    public EngineProfile Profile { get; }

    /// <summary>The compiled bucket sets and decode convention.</summary>
    public BucketSet Buckets { get; }

    /// <summary>The compiled decode batch sizes, ascending (a copy).</summary>
    public IReadOnlyList<int> BatchBuckets => [.. _batchEdges];

    /// <summary>The most sequences in flight at once: the largest batch bucket.</summary>
    public int MaxNumSeqs => _batchEdges[^1];

    /// <summary>Exact counts of the work done so far (warm-up included).</summary>
    public EngineCounters Counters => new(
        Interlocked.Read(ref _requests), Interlocked.Read(ref _prefillPasses), Interlocked.Read(ref _prefillRows),
        Interlocked.Read(ref _decodeSteps), Interlocked.Read(ref _attentionPositions), Interlocked.Read(ref _cacheMoves),
        Interlocked.Read(ref _cacheHandoffs), Interlocked.Read(ref _shadowPasses), Interlocked.Read(ref _paddedRows));

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

        engine.StartScheduler();
        return engine;
    }

    /// <summary>The deterministic prompt token of position <paramref name="index"/>, used by the length-only overload.</summary>
    public int SyntheticToken(int index)
    {
        var h = SplitMix.Mix(((ulong)(uint)Profile.Seed << 32) ^ (uint)index ^ 0x5EED_0000_0000_0000UL);
        return (int)(h % (ulong)_vocab);
    }

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
    /// The work multiplier of one bucket from now on (1 = none, up to 100): about <c>(m - 1)</c> times the bucket's work is
    /// repeated as extra layer passes whose results are discarded, so tokens do not change.
    /// </summary>
    public void SetSlowdown(BucketId bucket, double multiplier)
    {
        if (!double.IsFinite(multiplier) || multiplier < 1 || multiplier > 100)
        {
            throw new ArgumentOutOfRangeException(nameof(multiplier), multiplier, "a slowdown multiplier must be within 1..100");
        }

        var (slow, index) = SlowdownSlot(bucket);
        Volatile.Write(ref slow[index], multiplier);
    }

    /// <summary>The current work multiplier of one bucket.</summary>
    public double GetSlowdown(BucketId bucket)
    {
        var (slow, index) = SlowdownSlot(bucket);
        return Volatile.Read(ref slow[index]);
    }

    /// <summary>
    /// Brings the engine to its steady speed before anything is timed. The JIT first runs freshly called code unoptimised and
    /// recompiles hot methods in the background (tiered compilation), which makes the first hundreds of milliseconds several
    /// times slower. So: short rounds (the shortest prefill bucket and a few decode steps in every decode bucket, at the smallest
    /// batch bucket) repeat, with short pauses for the background compiler, until a round is no faster than the best of the rounds
    /// before (at most <paramref name="maxRounds"/>); then every prefill bucket runs once and every (batch, decode) bucket a few
    /// steps, so that each bucket's buffers have been touched. Warm-up uses its own slot: sequences in flight are not disturbed.
    /// Returns the number of stabilising rounds.
    /// </summary>
    public int Warmup(int maxRounds = 200)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxRounds);
        _gate.Wait();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var best = double.MaxValue;
            var sinceBest = 0;
            var rounds = 0;
            var started = Stopwatch.GetTimestamp();
            while (rounds < maxRounds)
            {
                var t0 = Stopwatch.GetTimestamp();
                WarmupRound(prefillBuckets: 1, batchBuckets: 1, stepsPerBucket: 3);
                var ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                rounds++;
                if (ms < best * 0.98)
                {
                    best = Math.Min(best, ms);
                    sinceBest = 0;
                }
                else if (++sinceBest >= 8 && Stopwatch.GetElapsedTime(started).TotalMilliseconds > 600)
                {
                    break;
                }

                Thread.Sleep(rounds < 5 ? 100 : 10);
            }

            WarmupRound(_prefillEdges.Length, _batchEdges.Length, stepsPerBucket: 3);
            return rounds;
        }
        finally
        {
            _gate.Release();
        }
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
        Buckets.EnsureRequest(promptTokenIds.Count, outputTokens);
        for (var i = 0; i < promptTokenIds.Count; i++)
        {
            if ((uint)promptTokenIds[i] >= (uint)_vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(promptTokenIds), promptTokenIds[i],
                    $"prompt token #{i} is {promptTokenIds[i]}; token ids must be within 0..{_vocab - 1}");
            }
        }

        return SubmitAsync(promptTokenIds, promptTokenIds.Count, outputTokens, onToken, cancellationToken);
    }

    /// <summary>As <see cref="GenerateAsync(IReadOnlyList{int}, int, Func{int, ValueTask}?, CancellationToken)"/> with the
    /// deterministic prompt <see cref="SyntheticPrompt"/> of <paramref name="promptLength"/> tokens.</summary>
    public Task<GenerationResult> GenerateAsync(int promptLength, int outputTokens, Func<int, ValueTask>? onToken = null,
        CancellationToken cancellationToken = default)
    {
        Buckets.EnsureRequest(promptLength, outputTokens);
        return SubmitAsync(null, promptLength, outputTokens, onToken, cancellationToken);
    }

    private void WarmupRound(int prefillBuckets, int batchBuckets, int stepsPerBucket)
    {
        for (var i = 0; i < prefillBuckets; i++)
        {
            var p = _prefillEdges[i];
            for (var n = 0; n < p; n++)
            {
                _prompt[n] = SyntheticToken(n);
            }

            _ = Prefill(p, i, _padSlot, out _);
        }

        for (var b = 0; b < batchBuckets; b++)
        {
            var batch = _batchEdges[b];
            for (var j = 0; j < _spans.Length; j++)
            {
                var start = Buckets.DecodeLowerEdge(j);
                for (var n = 0; n < stepsPerBucket; n++)
                {
                    for (var r = 0; r < batch; r++)
                    {
                        SetRow(r, _padSlot, Math.Min(start + n, _spans[j] - 1), SyntheticToken(n));
                    }

                    DecodeBatch(batch, batch, j, 0, Stopwatch.GetTimestamp(), out _, out _);
                }
            }
        }
    }

    private (double[] Slow, int Index) SlowdownSlot(BucketId bucket)
    {
        if (!Buckets.Contains(bucket))
        {
            throw new ArgumentOutOfRangeException(nameof(bucket), bucket.ToString(),
                $"'{bucket}' is not a bucket of this engine ({Buckets})");
        }

        return bucket.Kind == BucketKind.Prefill
            ? (_prefillSlowdown, Buckets.PrefillIndex(bucket.Edge))
            : (_decodeSlowdown, Buckets.DecodeIndex(bucket.Edge));
    }

    /// <summary>Extra layer passes owed for one pass of <paramref name="unitsPerPass"/> layer-equivalents at multiplier m.</summary>
    private static int ShadowCount(ref double credit, double multiplier, double unitsPerPass)
    {
        if (multiplier <= 1)
        {
            return 0;
        }

        credit += (multiplier - 1) * unitsPerPass;
        var n = (int)Math.Floor(credit);
        credit -= n;
        return n;
    }

    // ---------------------------------------------------------------- prefill

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int Prefill(int inputLength, int prefillIndex, int slot, out int shadow)
    {
        var p = _prefillEdges[prefillIndex];
        var h = _hidden;
        for (var n = 0; n < p; n++)
        {
            _paddedIds[n] = n < inputLength ? _prompt[n] : 0; // padding token 0; the causal mask keeps it out of real rows
            _embedding.AsSpan(_paddedIds[n] * h, h).CopyTo(_pX.AsSpan(n * h, h));
        }

        // Work of one prefill in layer passes: L layers plus one LM-head row.
        var layerMacs = (p * LayerWeightMacs()) + (2.0 * _heads * _headDim * p * p);
        shadow = ShadowCount(ref _prefillCredit[prefillIndex], Volatile.Read(ref _prefillSlowdown[prefillIndex]),
            _layers + ((double)_vocab * h / layerMacs));
        for (var l = 0; l < _layers; l++)
        {
            if (l == _layers - 1 && shadow > 0)
            {
                _pX.AsSpan(0, p * h).CopyTo(_pSaved);
            }

            PrefillLayer(l, _pX, p, slot);
        }

        for (var s = 0; s < shadow; s++)
        {
            _pSaved.AsSpan(0, p * h).CopyTo(_pShadow);
            PrefillLayer(_layers - 1, _pShadow, p, slot);
        }

        RmsNorm(_pX.AsSpan((inputLength - 1) * h, h), _finalNorm, _xn.AsSpan(0, h));
        MatMul(_embedding, _vocab, h, _xn, _logits, 1);
        _prefillPasses++;
        _prefillRows += p;
        _shadowPasses += shadow;
        return TensorPrimitives.IndexOfMax<float>(_logits.AsSpan(0, _vocab));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PrefillLayer(int l, float[] x, int p, int slot)
    {
        var w = _layerWeights[l];
        int h = _hidden, kv = _kvDim, hd = _headDim;
        NormRows(x, w.AttentionNorm, _pXn, p);

        MatMul(w.Wq, h, h, _pXn, _pQ, p);
        MatMul(w.Wk, kv, h, _pXn, _pKr, p);
        MatMul(w.Wv, kv, h, _pXn, _pVr, p);
        for (var n = 0; n < p; n++)
        {
            for (var head = 0; head < _heads; head++)
            {
                var q = _pQ.AsSpan((n * h) + (head * hd), hd);
                Rope(q, n);
                TensorPrimitives.Multiply(q, _attentionScale, q);
            }

            for (var g = 0; g < _kvHeads; g++)
            {
                Rope(_pKr.AsSpan((n * kv) + (g * hd), hd), n);
            }
        }

        // Transpose K and V into [layer][kvHead][headDim][P].
        var layerBase = l * kv * p;
        float[] pk = _prefillK[slot], pv = _prefillV[slot];
        for (var n = 0; n < p; n++)
        {
            for (var c = 0; c < kv; c++)
            {
                pk[layerBase + (c * p) + n] = _pKr[(n * kv) + c];
                pv[layerBase + (c * p) + n] = _pVr[(n * kv) + c];
            }
        }

        if (_threads == 1)
        {
            PrefillAttention(pk, pv, layerBase, p, 0, _heads, _scores[0]);
        }
        else
        {
            PrefillAttentionParallel(pk, pv, layerBase, p);
        }

        OutputAndMlp(w, x, p, _pA, _pT, _pXn, _pG, _pU);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PrefillAttention(float[] pk, float[] pv, int layerBase, int p, int headStart, int headEnd, float[] scores)
    {
        int h = _hidden, hd = _headDim;
        for (var head = headStart; head < headEnd; head++)
        {
            var kBase = layerBase + ((head / _group) * hd * p);
            for (var t = 0; t < p; t++)
            {
                AttendHead(pk, pv, kBase, p, t, _pQ.AsSpan((t * h) + (head * hd), hd), scores, _pA.AsSpan((t * h) + (head * hd), hd));
            }
        }
    }

    private void PrefillAttentionParallel(float[] pk, float[] pv, int layerBase, int p) =>
        Parallel.For(0, _threads, _parallel, t =>
        {
            var (s, e) = Chunk(_heads, t, _threads);
            PrefillAttention(pk, pv, layerBase, p, s, e, _scores[t]);
        });

    // ---------------------------------------------------------------- decode

    /// <summary>Copies slot <paramref name="slot"/>'s prefill KV (its first <paramref name="inputLength"/> positions of padded
    /// length <paramref name="p"/>) into its buffer of decode bucket <paramref name="j"/>.</summary>
    private void HandOff(int slot, int inputLength, int p, int j)
    {
        var span = _spans[j];
        var rows = _layers * _kvDim;
        float[] pk = _prefillK[slot], pv = _prefillV[slot], ck = _cacheK[slot][j], cv = _cacheV[slot][j];
        for (var r = 0; r < rows; r++)
        {
            pk.AsSpan(r * p, inputLength).CopyTo(ck.AsSpan(r * span, inputLength));
            pv.AsSpan(r * p, inputLength).CopyTo(cv.AsSpan(r * span, inputLength));
        }

        _cacheHandoffs++;
    }

    /// <summary>Copies slot <paramref name="slot"/>'s buffer of decode bucket <paramref name="from"/> into its buffer of
    /// <paramref name="to"/>: the whole of it when <paramref name="to"/> is longer (D grew), else the positions the shorter holds
    /// (D shrank when the longest sequence left; the row's own length fits, since D covers every row).</summary>
    private void MoveCache(int slot, int from, int to)
    {
        int a = _spans[from], b = _spans[to];
        var n = Math.Min(a, b);
        var rows = _layers * _kvDim;
        float[] fk = _cacheK[slot][from], fv = _cacheV[slot][from], tk = _cacheK[slot][to], tv = _cacheV[slot][to];
        for (var r = 0; r < rows; r++)
        {
            fk.AsSpan(r * a, n).CopyTo(tk.AsSpan(r * b, n));
            fv.AsSpan(r * a, n).CopyTo(tv.AsSpan(r * b, n));
        }

        _cacheMoves++;
    }

    /// <summary>Row <paramref name="r"/> of the next decode step: its slot's KV, the position of its input token, the token.</summary>
    private void SetRow(int r, int slot, int position, int token)
    {
        _rowSlot[r] = slot;
        _rowPosition[r] = position;
        _rowToken[r] = token;
    }

    /// <summary>
    /// One decode step at (<paramref name="batch"/>, decode bucket <paramref name="j"/>): every one of the <paramref name="batch"/>
    /// rows set by <see cref="SetRow"/> runs through every layer (projections and MLP as <c>batch</c>-row matrix products, attention
    /// per row over all of bucket <paramref name="j"/>'s span of the row's own buffer) and the LM head; the first
    /// <paramref name="rows"/> rows get their next token in <c>_rowToken</c>, the rest are padding whose results are discarded.
    /// Each row's computation reads only its own inputs and buffer, so its token does not depend on the other rows. Records the step
    /// (timed from <paramref name="started"/>, which includes the cache copies the caller made for it).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeBatch(int batch, int rows, int j, int cacheMoves, long started, out int shadow, out long index)
    {
        var span = _spans[j];
        var h = _hidden;
        for (var r = 0; r < batch; r++)
        {
            _embedding.AsSpan(_rowToken[r] * h, h).CopyTo(_x.AsSpan(r * h, h));
        }

        var layerMacs = LayerWeightMacs() + (2.0 * _heads * _headDim * span);
        shadow = ShadowCount(ref _decodeCredit[j], Volatile.Read(ref _decodeSlowdown[j]), _layers + ((double)_vocab * h / layerMacs));
        for (var l = 0; l < _layers; l++)
        {
            if (l == _layers - 1 && shadow > 0)
            {
                _x.AsSpan(0, batch * h).CopyTo(_xLastIn);
            }

            DecodeLayer(l, _x, batch, j);
        }

        for (var s = 0; s < shadow; s++)
        {
            _xLastIn.AsSpan(0, batch * h).CopyTo(_xShadow);
            DecodeLayer(_layers - 1, _xShadow, batch, j);
        }

        NormRows(_x, _finalNorm, _xn, batch);

        MatMul(_embedding, _vocab, h, _xn, _logits, batch);
        for (var r = 0; r < rows; r++)
        {
            _rowToken[r] = TensorPrimitives.IndexOfMax<float>(_logits.AsSpan(r * _vocab, _vocab));
        }

        index = _decodeSteps;
        _decodeSteps++;
        _attentionPositions += (long)batch * span;
        _paddedRows += batch - rows;
        _shadowPasses += shadow;
        RecordStep(new BatchStepTrace(index, batch, rows, new BucketId(BucketKind.Decode, _decodeEdges[j]), span, cacheMoves,
            shadow, Stopwatch.GetElapsedTime(started).TotalMilliseconds));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeLayer(int l, float[] x, int batch, int j)
    {
        var w = _layerWeights[l];
        int h = _hidden, kv = _kvDim, hd = _headDim, span = _spans[j];
        NormRows(x, w.AttentionNorm, _xn, batch);

        MatMul(w.Wq, h, h, _xn, _q, batch);
        MatMul(w.Wk, kv, h, _xn, _k, batch);
        MatMul(w.Wv, kv, h, _xn, _v, batch);
        var layerBase = l * kv * span;
        for (var r = 0; r < batch; r++)
        {
            var position = _rowPosition[r];
            for (var head = 0; head < _heads; head++)
            {
                var q = _q.AsSpan((r * h) + (head * hd), hd);
                Rope(q, position);
                TensorPrimitives.Multiply(q, _attentionScale, q);
            }

            var cacheK = _cacheK[_rowSlot[r]][j];
            var cacheV = _cacheV[_rowSlot[r]][j];
            for (var c = 0; c < kv; c++)
            {
                if (c % hd == 0)
                {
                    Rope(_k.AsSpan((r * kv) + c, hd), position);
                }

                cacheK[layerBase + (c * span) + position] = _k[(r * kv) + c];
                cacheV[layerBase + (c * span) + position] = _v[(r * kv) + c];
            }
        }

        if (_threads == 1)
        {
            DecodeAttention(layerBase, j, 0, batch * _heads, _scores[0]);
        }
        else
        {
            DecodeAttentionParallel(layerBase, j, batch * _heads);
        }

        OutputAndMlp(w, x, batch, _attn, _tmp, _xn, _gateBuf, _upBuf);
    }

    /// <summary>
    /// The rest of a layer for <paramref name="rows"/> rows (prefill's or a decode step's buffers): <c>x += Wo attn</c>, then
    /// <c>x += Wd (silu(Wg n) * Wu n)</c> with <c>n = RmsNorm(x)</c>. Norms and SwiGLU go row by row, so that a row's results
    /// never depend on how many rows share the vectors.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void OutputAndMlp(Layer w, float[] x, int rows, float[] attn, float[] tmp, float[] xn, float[] gate, float[] up)
    {
        int h = _hidden, f = _ffn;
        MatMul(w.Wo, h, h, attn, tmp, rows);
        TensorPrimitives.Add(x.AsSpan(0, rows * h), tmp.AsSpan(0, rows * h), x.AsSpan(0, rows * h));
        NormRows(x, w.MlpNorm, xn, rows);
        MatMul(w.Wg, f, h, xn, gate, rows);
        MatMul(w.Wu, f, h, xn, up, rows);
        for (var r = 0; r < rows; r++)
        {
            SwiGlu(gate.AsSpan(r * f, f), up.AsSpan(r * f, f));
        }

        MatMul(w.Wd, h, f, gate, tmp, rows);
        TensorPrimitives.Add(x.AsSpan(0, rows * h), tmp.AsSpan(0, rows * h), x.AsSpan(0, rows * h));
    }

    /// <summary>RmsNorm of each of the first <paramref name="rows"/> rows of <paramref name="x"/> into <paramref name="output"/>.</summary>
    private void NormRows(float[] x, float[] gamma, float[] output, int rows)
    {
        var h = _hidden;
        for (var r = 0; r < rows; r++)
        {
            RmsNorm(x.AsSpan(r * h, h), gamma, output.AsSpan(r * h, h));
        }
    }

    /// <summary>Attention of (row, head) pairs <paramref name="start"/>..<paramref name="end"/> (row-major), each over its row's buffer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeAttention(int layerBase, int j, int start, int end, float[] scores)
    {
        int h = _hidden, hd = _headDim, span = _spans[j];
        for (var pair = start; pair < end; pair++)
        {
            var (r, head) = Math.DivRem(pair, _heads);
            var slot = _rowSlot[r];
            var kBase = layerBase + ((head / _group) * hd * span);
            AttendHead(_cacheK[slot][j], _cacheV[slot][j], kBase, span, _rowPosition[r], _q.AsSpan((r * h) + (head * hd), hd), scores,
                _attn.AsSpan((r * h) + (head * hd), hd));
        }
    }

    private void DecodeAttentionParallel(int layerBase, int j, int pairs) =>
        Parallel.For(0, _threads, _parallel, t =>
        {
            var (s, e) = Chunk(pairs, t, _threads);
            DecodeAttention(layerBase, j, s, e, _scores[t]);
        });

    // ---------------------------------------------------------------- kernels

    /// <summary>
    /// One head, one query: scores over all <paramref name="span"/> positions of a transposed K (<c>[headDim][span]</c> from
    /// <paramref name="kBase"/>), masked beyond <paramref name="position"/>, softmax, weighted sum of V.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AttendHead(float[] k, float[] v, int kBase, int span, int position, ReadOnlySpan<float> q, float[] scoreBuffer,
        Span<float> output)
    {
        var hd = q.Length;
        var scores = scoreBuffer.AsSpan(0, span);
        TensorPrimitives.Multiply(k.AsSpan(kBase, span), q[0], scores);
        for (var d = 1; d < hd; d++)
        {
            TensorPrimitives.MultiplyAdd(k.AsSpan(kBase + (d * span), span), q[d], scores, scores);
        }

        scores[(position + 1)..].Fill(float.NegativeInfinity);
        var max = TensorPrimitives.Max<float>(scores);
        TensorPrimitives.Subtract(scores, max, scores);
        TensorPrimitives.Exp(scores, scores);
        TensorPrimitives.Multiply(scores, 1f / TensorPrimitives.Sum<float>(scores), scores);
        for (var d = 0; d < hd; d++)
        {
            output[d] = TensorPrimitives.Dot(scores, v.AsSpan(kBase + (d * span), span));
        }
    }

    private static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, Span<float> output)
    {
        var meanSquare = TensorPrimitives.SumOfSquares(x) / x.Length;
        TensorPrimitives.Multiply(x, 1f / MathF.Sqrt(meanSquare + NormEpsilon), output);
        TensorPrimitives.Multiply(output, gamma, output);
    }

    /// <summary>Rotary position embedding, half-split (Llama's rotate_half): (a, b) -> (a cos - b sin, b cos + a sin).</summary>
    private void Rope(Span<float> vector, int position)
    {
        var half = vector.Length / 2;
        var a = vector[..half];
        var b = vector[half..];
        var cos = _ropeCos.AsSpan(position * half, half);
        var sin = _ropeSin.AsSpan(position * half, half);
        TensorPrimitives.Multiply(a, sin, _ropeA);
        TensorPrimitives.Multiply(b, sin, _ropeB);
        TensorPrimitives.Multiply(a, cos, a);
        TensorPrimitives.Subtract(a, _ropeB, a);
        TensorPrimitives.Multiply(b, cos, b);
        TensorPrimitives.Add(b, _ropeA, b);
    }

    /// <summary>gate = silu(gate) * up (element-wise).</summary>
    private void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        // silu(g) = g * sigmoid(g), in slices through one preallocated buffer to stay allocation-free.
        for (var i = 0; i < gate.Length; i += _sigmoid.Length)
        {
            var g = gate.Slice(i, Math.Min(_sigmoid.Length, gate.Length - i));
            var u = up.Slice(i, g.Length);
            var sig = _sigmoid.AsSpan(0, g.Length);
            TensorPrimitives.Sigmoid(g, sig);
            TensorPrimitives.Multiply(g, sig, g);
            TensorPrimitives.Multiply(g, u, g);
        }
    }

    /// <summary>Y = X W^T for the first <paramref name="rows"/> rows: X is rows x inDim, W is outDim x inDim, Y is rows x outDim.
    /// Every element is one <see cref="TensorPrimitives.Dot(ReadOnlySpan{float}, ReadOnlySpan{float})"/> of a W row and an X row,
    /// whatever the number of rows or threads, so a row's results do not depend on its neighbours.</summary>
    private void MatMul(float[] w, int outDim, int inDim, float[] x, float[] y, int rows)
    {
        if (_threads == 1)
        {
            MatMulRows(w, outDim, inDim, x, y, 0, rows, 0, outDim);
        }
        else
        {
            MatMulParallel(w, outDim, inDim, x, y, rows);
        }
    }

    /// <summary>Splits the rows between threads when there are enough (prefill), else the outputs (a decode step's few rows).</summary>
    private void MatMulParallel(float[] w, int outDim, int inDim, float[] x, float[] y, int rows) =>
        Parallel.For(0, _threads, _parallel, t =>
        {
            if (rows >= _threads)
            {
                var (s, e) = Chunk(rows, t, _threads);
                MatMulRows(w, outDim, inDim, x, y, s, e, 0, outDim);
            }
            else
            {
                var (s, e) = Chunk(outDim, t, _threads);
                MatMulRows(w, outDim, inDim, x, y, 0, rows, s, e);
            }
        });

    /// <summary>Tiled so that a tile of W rows and a tile of X rows stay in cache together.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MatMulRows(float[] w, int outDim, int inDim, float[] x, float[] y, int start, int end, int outStart, int outEnd)
    {
        const int RowTile = 64, OutTile = 32;
        for (var p0 = start; p0 < end; p0 += RowTile)
        {
            var p1 = Math.Min(end, p0 + RowTile);
            for (var o0 = outStart; o0 < outEnd; o0 += OutTile)
            {
                var o1 = Math.Min(outEnd, o0 + OutTile);
                for (var p = p0; p < p1; p++)
                {
                    var xRow = x.AsSpan(p * inDim, inDim);
                    var yRow = y.AsSpan(p * outDim, outDim);
                    for (var o = o0; o < o1; o++)
                    {
                        yRow[o] = TensorPrimitives.Dot(w.AsSpan(o * inDim, inDim), xRow);
                    }
                }
            }
        }
    }

    private double LayerWeightMacs() => (2.0 * _hidden * _hidden) + (2.0 * _hidden * _kvDim) + (3.0 * _hidden * _ffn);

    private static (int Start, int End) Chunk(int n, int part, int parts)
    {
        var size = (n + parts - 1) / parts;
        var start = Math.Min(n, part * size);
        return (start, Math.Min(n, start + size));
    }

    private static float[] Ones(int n)
    {
        var a = new float[n];
        Array.Fill(a, 1f);
        return a;
    }

    private sealed class Layer
    {
        public Layer(SplitMix random, int hidden, int kvDim, int ffn)
        {
            var inScale = MathF.Sqrt(3f / hidden); // uniform with variance 1/fan-in
            Wq = random.Uniform(hidden * hidden, inScale);
            Wk = random.Uniform(kvDim * hidden, inScale);
            Wv = random.Uniform(kvDim * hidden, inScale);
            Wo = random.Uniform(hidden * hidden, inScale);
            Wg = random.Uniform(ffn * hidden, inScale);
            Wu = random.Uniform(ffn * hidden, inScale);
            Wd = random.Uniform(hidden * ffn, MathF.Sqrt(3f / ffn));
            AttentionNorm = Ones(hidden);
            MlpNorm = Ones(hidden);
        }

        public float[] Wq { get; }

        public float[] Wk { get; }

        public float[] Wv { get; }

        public float[] Wo { get; }

        public float[] Wg { get; }

        public float[] Wu { get; }

        public float[] Wd { get; }

        public float[] AttentionNorm { get; }

        public float[] MlpNorm { get; }
    }

    /// <summary>SplitMix64: fast, seeded, the same on every platform (unlike <see cref="Random"/>'s unseeded algorithm choice).</summary>
    private sealed class SplitMix(int seed)
    {
        private ulong _state = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL;

        public static ulong Mix(ulong z)
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public float[] Uniform(int n, float scale)
        {
            var a = new float[n];
            for (var i = 0; i < n; i++)
            {
                _state += 0x9E3779B97F4A7C15UL;
                var u = (Mix(_state) >> 40) * (1.0f / (1 << 24)); // [0, 1)
                a[i] = ((2f * u) - 1f) * scale;
            }

            return a;
        }
    }
}
