using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Lens.Engine;

/// <summary>
/// The model runner of the reference engine (vLLM's model runner): the weights of a decoder-only, Llama-like transformer
/// (RMSNorm, grouped-query attention with rotary positions, SwiGLU MLP, LM head tied to the embedding; random seeded weights) and
/// its static-shape math over one bucket at a time, as an NPU runs compiled graphs:
/// <list type="bullet">
/// <item><see cref="Prefill"/>: the prompt padded to the bucket's length <c>P</c>, every padded row computed (causal mask over
/// the full padded square), its K and V written into a staging buffer <c>[layer][kvHead][headDim][P]</c>;</item>
/// <item><see cref="Decode"/>: <c>B</c> rows set by <see cref="SetRow"/>, each attending over all of a bucket's span of its own
/// KV buffer (masked beyond its real length); padded rows are computed too and their results discarded.</item>
/// </list>
/// The runner owns only activations:
/// KV buffers belong to the <see cref="KvCache"/>, counts and timing to the caller. All buffers are allocated once; a decode step
/// allocates nothing (with one thread).
/// </summary>
internal sealed partial class ModelRunner
{
    private const float NormEpsilon = 1e-5f;
    private const float RopeTheta = 10000f;

    private readonly int _layers, _hidden, _heads, _kvHeads, _headDim, _kvDim, _ffn, _vocab, _group, _threads, _seed;
    private readonly float _attentionScale;
    private readonly ParallelOptions _parallel;

    // Weights.
    private readonly float[] _embedding; // vocab x hidden, also the LM head
    private readonly Layer[] _layerWeights;
    private readonly float[] _finalNorm;
    private readonly float[] _ropeCos, _ropeSin; // position x headDim/2

    // Decode rows of one step, B of them: row-major B x width, and each row's KV buffers, position and input (then output) token.
    private readonly float[] _x, _xn, _q, _k, _v, _attn, _tmp, _gateBuf, _upBuf, _logits, _ropeA, _ropeB, _sigmoid;
    private readonly float[][] _rowK, _rowV;
    private readonly int[] _rowPosition, _rowToken, _rowAttend;
    private float[]? _padK, _padV; // paged execution: the buffer the step's padding blocks are attended over
    private int _padPositions;
    private readonly float[] _padOut;
    private readonly float[][] _scores; // one per thread, of the longest span

    // Prefill state, sized for the longest prefill bucket; a request uses exactly its padded length P.
    private readonly int[] _prompt;
    private readonly int[] _paddedIds;
    private readonly float[] _pX, _pXn, _pQ, _pKr, _pVr, _pA, _pT, _pG, _pU;

    /// <param name="maxPosition">Positions the rotary tables cover (the longest sequence and prompt, plus margin).</param>
    /// <param name="maxRows">The most decode rows of a step: the largest batch bucket.</param>
    /// <param name="maxPrompt">The longest prefill bucket.</param>
    /// <param name="maxSpan">The longest attention span of a decode step.</param>
    public ModelRunner(EngineProfile profile, int maxPosition, int maxRows, int maxPrompt, int maxSpan)
    {
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
        _seed = profile.Seed;
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

        var maxScores = Math.Max(maxSpan, maxPrompt);
        _scores = new float[_threads][];
        for (var t = 0; t < _threads; t++)
        {
            _scores[t] = new float[maxScores];
        }

        _x = new float[maxRows * _hidden];
        _xn = new float[maxRows * _hidden];
        _q = new float[maxRows * _hidden];
        _k = new float[maxRows * _kvDim];
        _v = new float[maxRows * _kvDim];
        _attn = new float[maxRows * _hidden];
        _tmp = new float[maxRows * _hidden];
        _gateBuf = new float[maxRows * _ffn];
        _upBuf = new float[maxRows * _ffn];
        _logits = new float[maxRows * _vocab];
        _rowK = new float[maxRows][];
        _rowV = new float[maxRows][];
        _rowPosition = new int[maxRows];
        _rowToken = new int[maxRows];
        _rowAttend = new int[maxRows];
        _padOut = new float[_headDim];
        _ropeA = new float[half];
        _ropeB = new float[half];
        _sigmoid = new float[4096];

        _prompt = new int[maxPrompt];
        _paddedIds = new int[maxPrompt];
        _pX = new float[maxPrompt * _hidden];
        _pXn = new float[maxPrompt * _hidden];
        _pQ = new float[maxPrompt * _hidden];
        _pKr = new float[maxPrompt * _kvDim];
        _pVr = new float[maxPrompt * _kvDim];
        _pA = new float[maxPrompt * _hidden];
        _pT = new float[maxPrompt * _hidden];
        _pG = new float[maxPrompt * _ffn];
        _pU = new float[maxPrompt * _ffn];
    }

    /// <summary>A pass over one layer of a step's rows, in place on <c>x</c>; a struct, so that <see cref="RunLayers"/> is
    /// specialised per path and allocates nothing.</summary>
    private interface ILayerPass
    {
        void Run(int layer, float[] x);
    }

    /// <summary>The vocabulary size: token ids are within <c>0..Vocab - 1</c>.</summary>
    public int Vocab => _vocab;

    /// <summary>Floats of one sequence's K (or V) cache per position: layers x KV heads x head size.</summary>
    public int KvFloatsPerPosition => _layers * _kvDim;

    /// <summary>The prompt of the next <see cref="Prefill"/>: its first <c>I</c> entries are read.</summary>
    public Span<int> Prompt => _prompt;

    /// <summary>The deterministic prompt token of position <paramref name="index"/>.</summary>
    public int SyntheticToken(int index)
    {
        var h = SplitMix.Mix(((ulong)(uint)_seed << 32) ^ (uint)index ^ 0x5EED_0000_0000_0000UL);
        return (int)(h % (ulong)_vocab);
    }

    /// <summary>
    /// The prefill of the first <paramref name="inputLength"/> tokens of <see cref="Prompt"/>, padded to <paramref name="p"/>
    /// (padding token 0, kept out of real rows by the causal mask), writing K and V into <paramref name="stagingK"/> and
    /// <paramref name="stagingV"/> (<c>[layer][kvHead][headDim][p]</c>).
    /// Returns the first generated token.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Prefill(int inputLength, int p, float[] stagingK, float[] stagingV)
    {
        var h = _hidden;
        for (var n = 0; n < p; n++)
        {
            _paddedIds[n] = n < inputLength ? _prompt[n] : 0;
            _embedding.AsSpan(_paddedIds[n] * h, h).CopyTo(_pX.AsSpan(n * h, h));
        }

        RunLayers(new PrefillPass(this, p, stagingK, stagingV), _pX);
        RmsNorm(_pX.AsSpan((inputLength - 1) * h, h), _finalNorm, _xn.AsSpan(0, h));
        MatMul(_embedding, _vocab, h, _xn, _logits, 1);
        return TensorPrimitives.IndexOfMax<float>(_logits.AsSpan(0, _vocab));
    }

    /// <summary>
    /// Row <paramref name="r"/> of the next decode step: its KV buffers, the position of its input token, the token, and the
    /// positions its heads attend over (the first <paramref name="attend"/> of the buffer's span; all of it by default).
    /// </summary>
    public void SetRow(int r, float[] cacheK, float[] cacheV, int position, int token, int attend = int.MaxValue)
    {
        _rowK[r] = cacheK;
        _rowV[r] = cacheV;
        _rowPosition[r] = position;
        _rowToken[r] = token;
        _rowAttend[r] = attend;
    }

    /// <summary>
    /// Paged execution: besides its rows, each layer of the next decode steps attends one query per head over
    /// <paramref name="positions"/> positions of <paramref name="cacheK"/> and <paramref name="cacheV"/> (in pieces of the span),
    /// results discarded: the padding blocks up to the step's block bucket. 0: none.
    /// </summary>
    public void SetPadding(float[] cacheK, float[] cacheV, int positions)
    {
        _padK = cacheK;
        _padV = cacheV;
        _padPositions = positions;
    }

    /// <summary>The token row <paramref name="r"/> produced in the last <see cref="Decode"/>.</summary>
    public int RowToken(int r) => _rowToken[r];

    /// <summary>
    /// One decode step of <paramref name="batch"/> rows set by <see cref="SetRow"/> over buffers of <paramref name="span"/>
    /// positions: every row runs through every layer (projections and MLP as <c>batch</c>-row matrix products, attention per row
    /// over its own buffer), and the LM head; the first
    /// <paramref name="rows"/> rows get their next token (<see cref="RowToken"/>), the rest are padding whose results are
    /// discarded. Each row's computation reads only its own inputs and buffer, so its token does not depend on the other rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Decode(int batch, int rows, int span)
    {
        var h = _hidden;
        for (var r = 0; r < batch; r++)
        {
            _embedding.AsSpan(_rowToken[r] * h, h).CopyTo(_x.AsSpan(r * h, h));
        }

        RunLayers(new DecodePass(this, batch, span), _x);
        NormRows(_x, _finalNorm, _xn, batch);
        MatMul(_embedding, _vocab, h, _xn, _logits, batch);
        for (var r = 0; r < rows; r++)
        {
            _rowToken[r] = TensorPrimitives.IndexOfMax<float>(_logits.AsSpan(r * _vocab, _vocab));
        }
    }

    /// <summary>Every layer over <paramref name="x"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunLayers<TPass>(TPass pass, float[] x)
        where TPass : struct, ILayerPass
    {
        for (var l = 0; l < _layers; l++)
        {
            pass.Run(l, x);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PrefillLayer(int l, float[] x, int p, float[] pk, float[] pv)
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
                AttendHead(pk, pv, kBase, p, p, t, _pQ.AsSpan((t * h) + (head * hd), hd), scores, _pA.AsSpan((t * h) + (head * hd), hd));
            }
        }
    }

    private void PrefillAttentionParallel(float[] pk, float[] pv, int layerBase, int p) =>
        Parallel.For(0, _threads, _parallel, t =>
        {
            var (s, e) = Chunk(_heads, t, _threads);
            PrefillAttention(pk, pv, layerBase, p, s, e, _scores[t]);
        });

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeLayer(int l, float[] x, int batch, int span)
    {
        var w = _layerWeights[l];
        int h = _hidden, kv = _kvDim, hd = _headDim;
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

            var cacheK = _rowK[r];
            var cacheV = _rowV[r];
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
            DecodeAttention(layerBase, span, 0, batch * _heads, _scores[0]);
        }
        else
        {
            DecodeAttentionParallel(layerBase, span, batch * _heads);
        }

        if (_padPositions > 0)
        {
            PadAttention(layerBase, span);
        }

        OutputAndMlp(w, x, batch, _attn, _tmp, _xn, _gateBuf, _upBuf);
    }

    /// <summary>Attention of (row, head) pairs <paramref name="start"/>..<paramref name="end"/> (row-major), each over its row's buffer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeAttention(int layerBase, int span, int start, int end, float[] scores)
    {
        int h = _hidden, hd = _headDim;
        for (var pair = start; pair < end; pair++)
        {
            var (r, head) = Math.DivRem(pair, _heads);
            var kBase = layerBase + ((head / _group) * hd * span);
            AttendHead(_rowK[r], _rowV[r], kBase, span, Math.Min(_rowAttend[r], span), _rowPosition[r], _q.AsSpan((r * h) + (head * hd), hd),
                scores, _attn.AsSpan((r * h) + (head * hd), hd));
        }
    }

    /// <summary>The padding's attention (<see cref="SetPadding"/>): one query per head over the padding positions, discarded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PadAttention(int layerBase, int span)
    {
        var hd = _headDim;
        for (var head = 0; head < _heads; head++)
        {
            var kBase = layerBase + ((head / _group) * hd * span);
            for (var left = _padPositions; left > 0; left -= span)
            {
                var length = Math.Min(left, span);
                AttendHead(_padK!, _padV!, kBase, span, length, length - 1, _q.AsSpan(head * hd, hd), _scores[0], _padOut);
            }
        }
    }

    private void DecodeAttentionParallel(int layerBase, int span, int pairs) =>
        Parallel.For(0, _threads, _parallel, t =>
        {
            var (s, e) = Chunk(pairs, t, _threads);
            DecodeAttention(layerBase, span, s, e, _scores[t]);
        });

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

    private readonly struct PrefillPass(ModelRunner runner, int p, float[] stagingK, float[] stagingV) : ILayerPass
    {
        public void Run(int layer, float[] x) => runner.PrefillLayer(layer, x, p, stagingK, stagingV);
    }

    private readonly struct DecodePass(ModelRunner runner, int batch, int span) : ILayerPass
    {
        public void Run(int layer, float[] x) => runner.DecodeLayer(layer, x, batch, span);
    }
}
