using Lens.Core;

namespace Lens.Engine;

/// <summary>What <see cref="KvCache.Prepare"/> copied so that a slot's cache lives in the step's decode bucket.</summary>
internal enum CacheCopy
{
    /// <summary>The cache was already in that bucket's buffer.</summary>
    None,

    /// <summary>The slot's prefill KV was copied from its staging buffer (its first step).</summary>
    HandOff,

    /// <summary>The cache was copied from another bucket's buffer: the batch's decode bucket grew or shrank.</summary>
    Move,
}

/// <summary>
/// The reference engine's KV caches (vLLM's cache engine, with static shapes): for every sequence slot (the engine's
/// <c>max_num_seqs</c>, then one more for padded rows and warm-up, <see cref="PadSlot"/>) one buffer per decode bucket, padded to
/// that bucket's attention span (its edge, plus one under the before-append convention), and one prefill staging buffer of the
/// longest prefill bucket. Layout <c>[layer][kvHead][headDim][span]</c> (transposed, so that scoring a head over the bucket is
/// headDim long vector operations of the bucket's length). It knows which buffer holds each slot's cache and copies it when a
/// step's bucket differs (<see cref="Prepare"/>). Everything is allocated once, at creation.
/// </summary>
internal sealed class KvCache
{
    private readonly float[][][] _cacheK, _cacheV;
    private readonly float[][] _prefillK, _prefillV;
    private readonly int[] _spans;
    private readonly int[] _bucket; // per slot: the decode bucket index its cache is in, -1 while it is in the staging buffer
    private readonly int[] _stagedLength; // per slot: the padded length its staging buffer was written with
    private readonly int _floatsPerPosition;
    private const int Fresh = -2; // a slot's bucket before its first chunk (chunked prefill)

    /// <param name="floatsPerPosition">Floats of K (or V) per position: layers x KV heads x head size.</param>
    /// <param name="sequenceSlots">Slots for sequences in flight (<c>max_num_seqs</c>); one more is added for padded rows.</param>
    public KvCache(BucketSet buckets, int floatsPerPosition, int sequenceSlots)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        _floatsPerPosition = floatsPerPosition;
        var decode = buckets.Decode;
        _spans = new int[decode.Length];
        for (var j = 0; j < decode.Length; j++)
        {
            _spans[j] = decode[j] + (buckets.Convention == DecodeConvention.BeforeAppend ? 1 : 0);
        }

        var maxP = buckets.MaxPrompt;
        PadSlot = sequenceSlots;
        _cacheK = new float[sequenceSlots + 1][][];
        _cacheV = new float[sequenceSlots + 1][][];
        _prefillK = new float[sequenceSlots + 1][];
        _prefillV = new float[sequenceSlots + 1][];
        _bucket = new int[sequenceSlots + 1];
        _stagedLength = new int[sequenceSlots + 1];
        for (var slot = 0; slot <= sequenceSlots; slot++)
        {
            _cacheK[slot] = new float[decode.Length][];
            _cacheV[slot] = new float[decode.Length][];
            for (var j = 0; j < decode.Length; j++)
            {
                _cacheK[slot][j] = new float[floatsPerPosition * _spans[j]];
                _cacheV[slot][j] = new float[floatsPerPosition * _spans[j]];
            }

            _prefillK[slot] = new float[floatsPerPosition * maxP];
            _prefillV[slot] = new float[floatsPerPosition * maxP];
            _bucket[slot] = -1;
        }
    }

    /// <summary>The slot of padded rows and warm-up: never a sequence's.</summary>
    public int PadSlot { get; }

    /// <summary>The attention span of each decode bucket: the positions its buffers hold.</summary>
    public ReadOnlySpan<int> Spans => _spans;

    /// <summary>The longest attention span.</summary>
    public int MaxSpan => _spans[^1];

    /// <summary>The decode bucket index whose buffer holds <paramref name="slot"/>'s cache; -1 while it is staged by a prefill.</summary>
    public int BucketOf(int slot) => _bucket[slot];

    /// <summary>
    /// The staging buffers a prefill of padded length <paramref name="paddedLength"/> writes for <paramref name="slot"/>: the slot
    /// now holds a new sequence, whose first decode step takes this KV (<see cref="CacheCopy.HandOff"/>).
    /// </summary>
    public (float[] K, float[] V) BeginPrefill(int slot, int paddedLength)
    {
        _bucket[slot] = -1;
        _stagedLength[slot] = paddedLength;
        return (_prefillK[slot], _prefillV[slot]);
    }

    /// <summary>
    /// Chunked prefill: <paramref name="slot"/> now holds a new sequence whose first chunk is computed straight into the buffer of
    /// the step's bucket (nothing staged, nothing to copy at its first <see cref="Prepare"/>).
    /// </summary>
    public void Begin(int slot) => _bucket[slot] = Fresh;

    /// <summary>Slot <paramref name="slot"/>'s K buffer of decode bucket <paramref name="j"/>.</summary>
    public float[] K(int slot, int j) => _cacheK[slot][j];

    /// <summary>Slot <paramref name="slot"/>'s V buffer of decode bucket <paramref name="j"/>.</summary>
    public float[] V(int slot, int j) => _cacheV[slot][j];

    /// <summary>
    /// Makes <paramref name="slot"/>'s cache live in decode bucket <paramref name="j"/>'s buffer before a step there: a sequence's
    /// first step takes its prefill's KV (its first <paramref name="length"/> positions); a cache in another bucket's buffer is
    /// copied into this one, the whole of it when <paramref name="j"/> is longer (the batch's bucket grew), else the positions the
    /// shorter holds (it shrank when the longest sequence left; the row's own length fits, since the bucket covers every row).
    /// </summary>
    /// <param name="length">The sequence's prompt length <c>I</c>: the staged positions that are real.</param>
    public CacheCopy Prepare(int slot, int j, int length)
    {
        var from = _bucket[slot];
        _bucket[slot] = j;
        if (from == Fresh)
        {
            return CacheCopy.None;
        }

        if (from < 0)
        {
            HandOff(slot, length, _stagedLength[slot], j);
            return CacheCopy.HandOff;
        }

        if (from == j)
        {
            return CacheCopy.None;
        }

        Move(slot, from, j);
        return CacheCopy.Move;
    }

    private void HandOff(int slot, int inputLength, int p, int j)
    {
        var span = _spans[j];
        var rows = _floatsPerPosition;
        float[] pk = _prefillK[slot], pv = _prefillV[slot], ck = _cacheK[slot][j], cv = _cacheV[slot][j];
        for (var r = 0; r < rows; r++)
        {
            pk.AsSpan(r * p, inputLength).CopyTo(ck.AsSpan(r * span, inputLength));
            pv.AsSpan(r * p, inputLength).CopyTo(cv.AsSpan(r * span, inputLength));
        }
    }

    private void Move(int slot, int from, int to)
    {
        int a = _spans[from], b = _spans[to];
        var n = Math.Min(a, b);
        var rows = _floatsPerPosition;
        float[] fk = _cacheK[slot][from], fv = _cacheV[slot][from], tk = _cacheK[slot][to], tv = _cacheV[slot][to];
        for (var r = 0; r < rows; r++)
        {
            fk.AsSpan(r * a, n).CopyTo(tk.AsSpan(r * b, n));
            fv.AsSpan(r * a, n).CopyTo(tv.AsSpan(r * b, n));
        }
    }
}
