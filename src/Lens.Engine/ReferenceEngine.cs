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
/// padded square);</item>
/// <item>decode step <c>k = 1 .. O-1</c> runs at length <c>I + k</c> in <c>dec(StepLength(I, k))</c> (method.md, "Terms"), with a
/// KV cache buffer of exactly that bucket's length: every head scores all of the bucket's positions, masked beyond the real
/// length, so a step's cost is flat inside a bucket and steps at its edge (under the before-append convention the buffer holds one
/// more position, the token being appended);</item>
/// <item>crossing a bucket edge copies the cache into the next bucket's buffer; the prefill's KV is copied into the first
/// step's bucket;</item>
/// <item>greedy argmax, always exactly <c>O</c> tokens (no end-of-sequence).</item>
/// </list>
/// All buffers are allocated once, at creation; a decode step allocates nothing (with one thread). Requests run one at a time
/// (an NPU is exclusive). Every bucket is warmed up at creation unless asked not to.
/// </summary>
public sealed class ReferenceEngine : IDisposable
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

    // Decode state, one KV buffer per decode bucket: layout [layer][kvHead][headDim][span] (transposed, so that scoring a head
    // over the bucket is headDim long vector operations of the bucket's length).
    private readonly float[][] _cacheK, _cacheV;
    private readonly int[] _spans;
    private readonly int[] _prefillEdges, _decodeEdges; // copies: BucketSet.Prefill/Decode copy on every read
    private readonly float[] _x, _xn, _q, _k, _v, _attn, _tmp, _gateBuf, _upBuf, _logits, _xLastIn, _xShadow, _ropeA, _ropeB, _sigmoid;
    private readonly float[][] _scores; // one per thread, of the longest span

    // Prefill state, sized for the longest prefill bucket; a request uses exactly its padded length P.
    private readonly int[] _prompt;
    private readonly int[] _paddedIds;
    private readonly float[] _pX, _pXn, _pQ, _pKr, _pVr, _pA, _pT, _pG, _pU, _pSaved, _pShadow;
    private readonly float[] _pK, _pV; // [layer][kvHead][headDim][P]

    // Slowdown (multiplier per bucket) and the fractional layer passes owed.
    private readonly double[] _prefillSlowdown, _decodeSlowdown;
    private readonly double[] _prefillCredit, _decodeCredit;

    private long _requests, _prefillPasses, _prefillRows, _decodeSteps, _attentionPositions, _cacheMoves, _cacheHandoffs, _shadowPasses;
    private bool _disposed;

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
        _cacheK = new float[decode.Length][];
        _cacheV = new float[decode.Length][];
        for (var j = 0; j < decode.Length; j++)
        {
            _spans[j] = decode[j] + (buckets.Convention == DecodeConvention.BeforeAppend ? 1 : 0);
            _cacheK[j] = new float[_layers * _kvDim * _spans[j]];
            _cacheV[j] = new float[_layers * _kvDim * _spans[j]];
        }

        var maxP = buckets.MaxPrompt;
        var maxScores = Math.Max(_spans[^1], maxP);
        _scores = new float[_threads][];
        for (var t = 0; t < _threads; t++)
        {
            _scores[t] = new float[maxScores];
        }

        _x = new float[_hidden];
        _xn = new float[_hidden];
        _q = new float[_hidden];
        _k = new float[_kvDim];
        _v = new float[_kvDim];
        _attn = new float[_hidden];
        _tmp = new float[_hidden];
        _gateBuf = new float[_ffn];
        _upBuf = new float[_ffn];
        _logits = new float[_vocab];
        _xLastIn = new float[_hidden];
        _xShadow = new float[_hidden];
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
        _pK = new float[_layers * _kvDim * maxP];
        _pV = new float[_layers * _kvDim * maxP];

        _prefillSlowdown = Enumerable.Repeat(1.0, buckets.Prefill.Length).ToArray();
        _decodeSlowdown = Enumerable.Repeat(1.0, decode.Length).ToArray();
        _prefillCredit = new double[buckets.Prefill.Length];
        _decodeCredit = new double[decode.Length];
        foreach (var (key, value) in profile.Slowdown ?? [])
        {
            SetSlowdown(BucketId.Parse(key), value);
        }
    }

    /// <summary>The profile the engine was created from (its slowdowns as at creation; see <see cref="GetSlowdown"/>).</summary>
    public EngineProfile Profile { get; }

    /// <summary>The compiled bucket sets and decode convention.</summary>
    public BucketSet Buckets { get; }

    /// <summary>Exact counts of the work done so far (warm-up included).</summary>
    public EngineCounters Counters => new(
        Interlocked.Read(ref _requests), Interlocked.Read(ref _prefillPasses), Interlocked.Read(ref _prefillRows),
        Interlocked.Read(ref _decodeSteps), Interlocked.Read(ref _attentionPositions), Interlocked.Read(ref _cacheMoves),
        Interlocked.Read(ref _cacheHandoffs), Interlocked.Read(ref _shadowPasses));

    /// <summary>
    /// Validates the profile, allocates every buffer and weight, and (unless <paramref name="warmup"/> is false) warms up every bucket.
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
    /// times slower. So: short rounds (the shortest prefill bucket and a few decode steps in every decode bucket) repeat, with
    /// short pauses for the background compiler, until a round is no faster than the best of the rounds before (at most
    /// <paramref name="maxRounds"/>); then every prefill bucket runs once and every decode bucket a few steps, so that each
    /// bucket's buffers have been touched. Returns the number of stabilising rounds.
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
                WarmupRound(prefillBuckets: 1, stepsPerBucket: 3);
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

            WarmupRound(_prefillEdges.Length, stepsPerBucket: 3);
            return rounds;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Generates exactly <paramref name="outputTokens"/> tokens after <paramref name="promptTokenIds"/>; calls
    /// <paramref name="onToken"/> with each token as soon as it exists (the first right after prefill: TTFT).
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

        return GenerateLockedAsync(promptTokenIds, promptTokenIds.Count, outputTokens, onToken, cancellationToken);
    }

    /// <summary>As <see cref="GenerateAsync(IReadOnlyList{int}, int, Func{int, ValueTask}?, CancellationToken)"/> with the
    /// deterministic prompt <see cref="SyntheticPrompt"/> of <paramref name="promptLength"/> tokens.</summary>
    public Task<GenerationResult> GenerateAsync(int promptLength, int outputTokens, Func<int, ValueTask>? onToken = null,
        CancellationToken cancellationToken = default)
    {
        Buckets.EnsureRequest(promptLength, outputTokens);
        return GenerateLockedAsync(null, promptLength, outputTokens, onToken, cancellationToken);
    }

    public void Dispose() => _disposed = true;

    private void WarmupRound(int prefillBuckets, int stepsPerBucket)
    {
        for (var i = 0; i < prefillBuckets; i++)
        {
            var p = _prefillEdges[i];
            for (var n = 0; n < p; n++)
            {
                _prompt[n] = SyntheticToken(n);
            }

            _ = Prefill(p, i, out _);
        }

        for (var j = 0; j < _spans.Length; j++)
        {
            var start = Buckets.DecodeLowerEdge(j);
            for (var n = 0; n < stepsPerBucket; n++)
            {
                _ = DecodeStep(SyntheticToken(n), Math.Min(start + n, _spans[j] - 1), j, out _);
            }
        }
    }

    private async Task<GenerationResult> GenerateLockedAsync(IReadOnlyList<int>? prompt, int inputLength, int outputTokens,
        Func<int, ValueTask>? onToken, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var start = Stopwatch.GetTimestamp();
            for (var i = 0; i < inputLength; i++)
            {
                _prompt[i] = prompt is null ? SyntheticToken(i) : prompt[i];
            }

            var tokens = new int[outputTokens];
            var steps = new DecodeStepTrace[outputTokens - 1];
            var prefillIndex = Buckets.PrefillIndex(inputLength);
            var token = Prefill(inputLength, prefillIndex, out var prefillShadow);
            var afterPrefill = Stopwatch.GetTimestamp();
            tokens[0] = token;
            var prefillTrace = new PrefillTrace(new BucketId(BucketKind.Prefill, _prefillEdges[prefillIndex]), _prefillEdges[prefillIndex],
                prefillShadow, Stopwatch.GetElapsedTime(start, afterPrefill).TotalMilliseconds);
            if (onToken is not null)
            {
                await onToken(token);
            }

            var ttft = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var current = -1;
            var moves = 0;
            for (var k = 1; k < outputTokens; k++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var stepStart = Stopwatch.GetTimestamp();
                var j = Buckets.DecodeIndex(Buckets.StepLength(inputLength, k));
                var moved = false;
                if (current < 0)
                {
                    HandOff(inputLength, _prefillEdges[prefillIndex], j);
                }
                else if (j != current)
                {
                    MoveCache(current, j);
                    moved = true;
                    moves++;
                }

                current = j;
                token = DecodeStep(token, inputLength + k - 1, j, out var shadow);
                tokens[k] = token;
                steps[k - 1] = new DecodeStepTrace(k, inputLength + k, new BucketId(BucketKind.Decode, _decodeEdges[j]), _spans[j], moved,
                    shadow, Stopwatch.GetElapsedTime(stepStart).TotalMilliseconds);
                if (onToken is not null)
                {
                    await onToken(token);
                }
            }

            Interlocked.Increment(ref _requests);
            var e2e = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            return new GenerationResult(tokens, inputLength, prefillTrace, steps, moves, ttft, e2e);
        }
        finally
        {
            _gate.Release();
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
    private int Prefill(int inputLength, int prefillIndex, out int shadow)
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

            PrefillLayer(l, _pX, p);
        }

        for (var s = 0; s < shadow; s++)
        {
            _pSaved.AsSpan(0, p * h).CopyTo(_pShadow);
            PrefillLayer(_layers - 1, _pShadow, p);
        }

        RmsNorm(_pX.AsSpan((inputLength - 1) * h, h), _finalNorm, _xn);
        MatVec(_embedding, _xn, _logits);
        _prefillPasses++;
        _prefillRows += p;
        _shadowPasses += shadow;
        return TensorPrimitives.IndexOfMax<float>(_logits);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PrefillLayer(int l, float[] x, int p)
    {
        var w = _layerWeights[l];
        int h = _hidden, kv = _kvDim, hd = _headDim;
        for (var n = 0; n < p; n++)
        {
            RmsNorm(x.AsSpan(n * h, h), w.AttentionNorm, _pXn.AsSpan(n * h, h));
        }

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
        for (var n = 0; n < p; n++)
        {
            for (var c = 0; c < kv; c++)
            {
                _pK[layerBase + (c * p) + n] = _pKr[(n * kv) + c];
                _pV[layerBase + (c * p) + n] = _pVr[(n * kv) + c];
            }
        }

        if (_threads == 1)
        {
            PrefillAttention(layerBase, p, 0, _heads, _scores[0]);
        }
        else
        {
            PrefillAttentionParallel(layerBase, p);
        }

        MatMul(w.Wo, h, h, _pA, _pT, p);
        TensorPrimitives.Add(x.AsSpan(0, p * h), _pT.AsSpan(0, p * h), x.AsSpan(0, p * h));
        for (var n = 0; n < p; n++)
        {
            RmsNorm(x.AsSpan(n * h, h), w.MlpNorm, _pXn.AsSpan(n * h, h));
        }

        MatMul(w.Wg, _ffn, h, _pXn, _pG, p);
        MatMul(w.Wu, _ffn, h, _pXn, _pU, p);
        SwiGlu(_pG.AsSpan(0, p * _ffn), _pU.AsSpan(0, p * _ffn));
        MatMul(w.Wd, h, _ffn, _pG, _pT, p);
        TensorPrimitives.Add(x.AsSpan(0, p * h), _pT.AsSpan(0, p * h), x.AsSpan(0, p * h));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PrefillAttention(int layerBase, int p, int headStart, int headEnd, float[] scores)
    {
        int h = _hidden, hd = _headDim;
        for (var head = headStart; head < headEnd; head++)
        {
            var kBase = layerBase + ((head / _group) * hd * p);
            for (var t = 0; t < p; t++)
            {
                AttendHead(_pK, _pV, kBase, p, t, _pQ.AsSpan((t * h) + (head * hd), hd), scores, _pA.AsSpan((t * h) + (head * hd), hd));
            }
        }
    }

    private void PrefillAttentionParallel(int layerBase, int p) =>
        Parallel.For(0, _threads, _parallel, t =>
        {
            var (s, e) = Chunk(_heads, t, _threads);
            PrefillAttention(layerBase, p, s, e, _scores[t]);
        });

    // ---------------------------------------------------------------- decode

    /// <summary>Copies the prefill's first <paramref name="inputLength"/> KV positions into decode bucket <paramref name="j"/>.</summary>
    private void HandOff(int inputLength, int p, int j)
    {
        var span = _spans[j];
        var rows = _layers * _kvDim;
        for (var r = 0; r < rows; r++)
        {
            _pK.AsSpan(r * p, inputLength).CopyTo(_cacheK[j].AsSpan(r * span, inputLength));
            _pV.AsSpan(r * p, inputLength).CopyTo(_cacheV[j].AsSpan(r * span, inputLength));
        }

        _cacheHandoffs++;
    }

    /// <summary>Copies the whole buffer of decode bucket <paramref name="from"/> into the longer one of <paramref name="to"/>.</summary>
    private void MoveCache(int from, int to)
    {
        int a = _spans[from], b = _spans[to];
        var n = Math.Min(a, b);
        var rows = _layers * _kvDim;
        for (var r = 0; r < rows; r++)
        {
            _cacheK[from].AsSpan(r * a, n).CopyTo(_cacheK[to].AsSpan(r * b, n));
            _cacheV[from].AsSpan(r * a, n).CopyTo(_cacheV[to].AsSpan(r * b, n));
        }

        _cacheMoves++;
    }

    /// <summary>One decode step: the token at <paramref name="position"/> attends over all of bucket <paramref name="j"/>'s span.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int DecodeStep(int token, int position, int j, out int shadow)
    {
        var span = _spans[j];
        _embedding.AsSpan(token * _hidden, _hidden).CopyTo(_x);
        var layerMacs = LayerWeightMacs() + (2.0 * _heads * _headDim * span);
        shadow = ShadowCount(ref _decodeCredit[j], Volatile.Read(ref _decodeSlowdown[j]), _layers + ((double)_vocab * _hidden / layerMacs));
        for (var l = 0; l < _layers; l++)
        {
            if (l == _layers - 1 && shadow > 0)
            {
                _x.CopyTo(_xLastIn, 0);
            }

            DecodeLayer(l, _x, j, position);
        }

        for (var s = 0; s < shadow; s++)
        {
            _xLastIn.CopyTo(_xShadow, 0);
            DecodeLayer(_layers - 1, _xShadow, j, position);
        }

        RmsNorm(_x, _finalNorm, _xn);
        MatVec(_embedding, _xn, _logits);
        _decodeSteps++;
        _attentionPositions += span;
        _shadowPasses += shadow;
        return TensorPrimitives.IndexOfMax<float>(_logits);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeLayer(int l, float[] x, int j, int position)
    {
        var w = _layerWeights[l];
        int hd = _headDim, span = _spans[j];
        RmsNorm(x, w.AttentionNorm, _xn);
        MatVec(w.Wq, _xn, _q);
        MatVec(w.Wk, _xn, _k);
        MatVec(w.Wv, _xn, _v);
        for (var head = 0; head < _heads; head++)
        {
            var q = _q.AsSpan(head * hd, hd);
            Rope(q, position);
            TensorPrimitives.Multiply(q, _attentionScale, q);
        }

        var layerBase = l * _kvDim * span;
        var cacheK = _cacheK[j];
        var cacheV = _cacheV[j];
        for (var c = 0; c < _kvDim; c++)
        {
            if (c % hd == 0)
            {
                Rope(_k.AsSpan(c, hd), position);
            }

            cacheK[layerBase + (c * span) + position] = _k[c];
            cacheV[layerBase + (c * span) + position] = _v[c];
        }

        if (_threads == 1)
        {
            DecodeAttention(cacheK, cacheV, layerBase, span, position, 0, _heads, _scores[0]);
        }
        else
        {
            DecodeAttentionParallel(cacheK, cacheV, layerBase, span, position);
        }

        MatVec(w.Wo, _attn, _tmp);
        TensorPrimitives.Add(x, _tmp, x);
        RmsNorm(x, w.MlpNorm, _xn);
        MatVec(w.Wg, _xn, _gateBuf);
        MatVec(w.Wu, _xn, _upBuf);
        SwiGlu(_gateBuf, _upBuf);
        MatVec(w.Wd, _gateBuf, _tmp);
        TensorPrimitives.Add(x, _tmp, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeAttention(float[] cacheK, float[] cacheV, int layerBase, int span, int position, int headStart, int headEnd,
        float[] scores)
    {
        var hd = _headDim;
        for (var head = headStart; head < headEnd; head++)
        {
            var kBase = layerBase + ((head / _group) * hd * span);
            AttendHead(cacheK, cacheV, kBase, span, position, _q.AsSpan(head * hd, hd), scores, _attn.AsSpan(head * hd, hd));
        }
    }

    private void DecodeAttentionParallel(float[] cacheK, float[] cacheV, int layerBase, int span, int position) =>
        Parallel.For(0, _threads, _parallel, t =>
        {
            var (s, e) = Chunk(_heads, t, _threads);
            DecodeAttention(cacheK, cacheV, layerBase, span, position, s, e, _scores[t]);
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

    /// <summary>gate = silu(gate) * up.</summary>
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

    /// <summary>y = W x, W row-major <c>y.Length x x.Length</c>.</summary>
    private void MatVec(float[] w, float[] x, float[] y)
    {
        if (_threads == 1)
        {
            MatVecRows(w, x, y, 0, y.Length);
        }
        else
        {
            MatVecParallel(w, x, y);
        }
    }

    private void MatVecParallel(float[] w, float[] x, float[] y) =>
        Parallel.For(0, _threads, _parallel, t =>
        {
            var (s, e) = Chunk(y.Length, t, _threads);
            MatVecRows(w, x, y, s, e);
        });

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MatVecRows(float[] w, float[] x, float[] y, int start, int end)
    {
        var cols = x.Length;
        for (var r = start; r < end; r++)
        {
            y[r] = TensorPrimitives.Dot(w.AsSpan(r * cols, cols), x);
        }
    }

    /// <summary>Y = X W^T for the first <paramref name="rows"/> rows: X is rows x inDim, W is outDim x inDim, Y is rows x outDim.</summary>
    private void MatMul(float[] w, int outDim, int inDim, float[] x, float[] y, int rows)
    {
        if (_threads == 1)
        {
            MatMulRows(w, outDim, inDim, x, y, 0, rows);
        }
        else
        {
            MatMulParallel(w, outDim, inDim, x, y, rows);
        }
    }

    private void MatMulParallel(float[] w, int outDim, int inDim, float[] x, float[] y, int rows) =>
        Parallel.For(0, _threads, _parallel, t =>
        {
            var (s, e) = Chunk(rows, t, _threads);
            MatMulRows(w, outDim, inDim, x, y, s, e);
        });

    /// <summary>Tiled so that a tile of W rows and a tile of X rows stay in cache together.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MatMulRows(float[] w, int outDim, int inDim, float[] x, float[] y, int start, int end)
    {
        const int RowTile = 64, OutTile = 32;
        for (var p0 = start; p0 < end; p0 += RowTile)
        {
            var p1 = Math.Min(end, p0 + RowTile);
            for (var o0 = 0; o0 < outDim; o0 += OutTile)
            {
                var o1 = Math.Min(outDim, o0 + OutTile);
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
