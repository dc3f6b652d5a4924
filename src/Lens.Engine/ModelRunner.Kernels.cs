using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Lens.Engine;

/// <summary>The model runner's kernels (norms, rotary positions, attention of one head, SwiGLU, matrix products) and its weights.</summary>
internal sealed partial class ModelRunner
{
    /// <summary>RmsNorm of each of the first <paramref name="rows"/> rows of <paramref name="x"/> into <paramref name="output"/>.</summary>
    private void NormRows(float[] x, float[] gamma, float[] output, int rows)
    {
        var h = _hidden;
        for (var r = 0; r < rows; r++)
        {
            RmsNorm(x.AsSpan(r * h, h), gamma, output.AsSpan(r * h, h));
        }
    }

    /// <summary>
    /// One head, one query: scores over the first <paramref name="length"/> positions of a transposed K (<c>[headDim][stride]</c>
    /// from <paramref name="kBase"/>), masked beyond <paramref name="position"/>, softmax, weighted sum of V.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AttendHead(float[] k, float[] v, int kBase, int stride, int length, int position, ReadOnlySpan<float> q,
        float[] scoreBuffer, Span<float> output)
    {
        var hd = q.Length;
        var span = length;
        var scores = scoreBuffer.AsSpan(0, span);
        TensorPrimitives.Multiply(k.AsSpan(kBase, span), q[0], scores);
        for (var d = 1; d < hd; d++)
        {
            TensorPrimitives.MultiplyAdd(k.AsSpan(kBase + (d * stride), span), q[d], scores, scores);
        }

        scores[(position + 1)..].Fill(float.NegativeInfinity);
        var max = TensorPrimitives.Max<float>(scores);
        TensorPrimitives.Subtract(scores, max, scores);
        TensorPrimitives.Exp(scores, scores);
        TensorPrimitives.Multiply(scores, 1f / TensorPrimitives.Sum<float>(scores), scores);
        for (var d = 0; d < hd; d++)
        {
            output[d] = TensorPrimitives.Dot(scores, v.AsSpan(kBase + (d * stride), span));
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
