using System.Diagnostics;
using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// Slowdown injection, the step-cost hook of both paths: a time multiplier per cost cell (1 = none, up to 100), a prefill bucket or
/// a decode (batch bucket, length bucket) cell. A step of a cell at multiplier <c>m</c> that computed for <c>t</c> then busy-waits
/// until <c>m t</c> has passed since it began (<see cref="Stall"/>), so the cell's step takes <c>m</c> times its own time, whatever
/// part of it is memory, cache copies or compute, and tokens do not change. (Repeating layer passes instead, as the hook first did,
/// fell far short: a repeated layer finds its weights in the CPU's caches, so x1.3 of work slowed a cell by about 7%.) The CPU stays
/// busy as in compute, as a slower device would keep it. Multipliers may change while steps run (volatile).
/// <para>
/// Names (<see cref="Parse"/>): <c>prefill-N</c>; <c>decode-N</c>, the length bucket at every batch bucket (the per-bucket form, as
/// before batch buckets); <c>decode-N-bB</c>, one cell: length bucket N at batch bucket B (<c>-b1</c> included).
/// </para>
/// </summary>
internal sealed class SlowdownHook
{
    private readonly BucketSet _buckets;
    private readonly int[] _batch; // the engine's batch buckets, ascending
    private readonly int _lengths; // decode (length) buckets per batch bucket
    private readonly double[] _prefill, _decode; // multiplier per prefill bucket; per decode cell, [batch index * decode buckets + length index]

    public SlowdownHook(BucketSet buckets, IReadOnlyDictionary<string, double>? multipliers = null, IReadOnlyList<int>? batchBuckets = null)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        _buckets = buckets;
        _batch = batchBuckets is { Count: > 0 } b ? [.. b] : [1];
        _lengths = buckets.Decode.Length;
        _prefill = Enumerable.Repeat(1.0, buckets.Prefill.Length).ToArray();
        _decode = Enumerable.Repeat(1.0, buckets.Decode.Length * _batch.Length).ToArray();
        foreach (var (key, value) in multipliers ?? new Dictionary<string, double>())
        {
            var (id, cell) = Parse(key);
            Set(id, value, cell);
        }
    }

    /// <summary>
    /// Reads a slowdown's name: the bucket and whether it names one decode cell (<c>decode-N-bB</c>, batch suffix written) rather
    /// than a whole length bucket (<c>decode-N</c>: every batch bucket). Throws <see cref="FormatException"/> for anything else.
    /// </summary>
    public static (BucketId Bucket, bool Cell) Parse(string key)
    {
        var id = BucketId.Parse(key);
        var cell = id.Kind == BucketKind.Decode && key.Contains("-b", StringComparison.OrdinalIgnoreCase);
        return (id, cell);
    }

    /// <summary>
    /// Sets a multiplier from now on: a prefill bucket's; with <paramref name="cell"/>, the one decode cell
    /// (<see cref="BucketId.Edge"/>, <see cref="BucketId.Batch"/>); else a decode bucket's at every batch bucket when its batch is 1
    /// (the per-bucket form) or the one cell of a larger batch. Throws for a value outside 1..100 or a bucket not of the engine.
    /// </summary>
    public void Set(BucketId bucket, double multiplier, bool cell = false)
    {
        if (!double.IsFinite(multiplier) || multiplier < 1 || multiplier > 100)
        {
            throw new ArgumentOutOfRangeException(nameof(multiplier), multiplier, "a slowdown multiplier must be within 1..100");
        }

        var (slow, index) = Slot(bucket);
        if (bucket.Kind == BucketKind.Decode && bucket.Batch == 1 && !cell)
        {
            var lengths = _buckets.Decode.Length;
            for (var b = 0; b < _batch.Length; b++)
            {
                Volatile.Write(ref slow[(b * lengths) + index], multiplier);
            }

            return;
        }

        Volatile.Write(ref slow[index], multiplier);
    }

    /// <summary>One prefill bucket's or decode cell's current multiplier (<c>decode-N</c> is the cell at batch 1).</summary>
    public double Get(BucketId bucket)
    {
        var (slow, index) = Slot(bucket);
        return Volatile.Read(ref slow[index]);
    }

    /// <summary>
    /// The current multiplier of prefill bucket <paramref name="index"/>, or of the decode cell at length bucket
    /// <paramref name="index"/> and batch bucket index <paramref name="batchIndex"/>.
    /// </summary>
    public double Multiplier(BucketKind kind, int index, int batchIndex = 0) => kind == BucketKind.Prefill
        ? Volatile.Read(ref _prefill[index])
        : Volatile.Read(ref _decode[(batchIndex * _lengths) + index]);

    /// <summary>
    /// Ends a step begun at <paramref name="started"/> (a <see cref="Stopwatch"/> timestamp) at <paramref name="multiplier"/>: waits
    /// until <c>m</c> times the time it has taken so far has passed since it began. Returns the ticks it waited (0 at m = 1).
    /// </summary>
    public static long Stall(long started, double multiplier)
    {
        if (multiplier <= 1)
        {
            return 0;
        }

        var computed = Stopwatch.GetTimestamp();
        var until = started + (long)((computed - started) * multiplier);
        long now;
        do
        {
            // A busy wait: a sleep's granularity (tens of microseconds and more) is coarse beside sub-millisecond steps.
            Thread.SpinWait(16);
            now = Stopwatch.GetTimestamp();
        }
        while (now < until);

        return now - computed;
    }

    /// <summary>The index of batch bucket <paramref name="batch"/> (a compiled batch size of the engine).</summary>
    public int BatchIndex(int batch)
    {
        // A plain scan (a handful of buckets): this runs once per decode step and must not allocate.
        for (var i = 0; i < _batch.Length; i++)
        {
            if (_batch[i] == batch)
            {
                return i;
            }
        }

        throw NotABatchBucket(batch);
    }

    private ArgumentOutOfRangeException NotABatchBucket(int batch) =>
        new(nameof(batch), batch, $"not a batch bucket of this engine ({string.Join(',', _batch)})");

    private (double[] Slow, int Index) Slot(BucketId bucket)
    {
        var known = bucket.Kind == BucketKind.Prefill
            ? _buckets.Contains(bucket)
            : _buckets.Contains(bucket with { Batch = 1 }) && Array.BinarySearch(_batch, bucket.Batch) >= 0;
        if (!known)
        {
            throw new ArgumentOutOfRangeException(nameof(bucket), bucket.ToString(),
                $"'{bucket}' is not a bucket of this engine ({_buckets}, batch buckets {string.Join(',', _batch)})");
        }

        return bucket.Kind == BucketKind.Prefill
            ? (_prefill, _buckets.PrefillIndex(bucket.Edge))
            : (_decode, (Array.BinarySearch(_batch, bucket.Batch) * _buckets.Decode.Length) + _buckets.DecodeIndex(bucket.Edge));
    }
}
