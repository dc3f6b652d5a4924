using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// Slowdown injection, the step-cost hook of both paths: a work multiplier per bucket (1 = none, up to 100) turned into extra
/// layer passes per step, whose results the model runner discards, so tokens do not change. A pass of <c>u</c> layer-equivalents
/// at multiplier <c>m</c> owes <c>(m - 1) u</c> extra passes; the fraction is carried over to the bucket's next pass, so that the
/// work over many steps is <c>m</c> times the bucket's. Multipliers may change while steps run (volatile); the credits belong to
/// the thread that runs steps.
/// </summary>
internal sealed class SlowdownHook
{
    private readonly BucketSet _buckets;
    private readonly double[] _prefill, _decode; // multiplier per bucket
    private readonly double[] _prefillCredit, _decodeCredit; // fractional passes owed

    public SlowdownHook(BucketSet buckets, IReadOnlyDictionary<string, double>? multipliers = null)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        _buckets = buckets;
        _prefill = Enumerable.Repeat(1.0, buckets.Prefill.Length).ToArray();
        _decode = Enumerable.Repeat(1.0, buckets.Decode.Length).ToArray();
        _prefillCredit = new double[_prefill.Length];
        _decodeCredit = new double[_decode.Length];
        foreach (var (key, value) in multipliers ?? new Dictionary<string, double>())
        {
            Set(BucketId.Parse(key), value);
        }
    }

    /// <summary>Sets one bucket's multiplier from now on; throws for a value outside 1..100 or a bucket not of the engine.</summary>
    public void Set(BucketId bucket, double multiplier)
    {
        if (!double.IsFinite(multiplier) || multiplier < 1 || multiplier > 100)
        {
            throw new ArgumentOutOfRangeException(nameof(multiplier), multiplier, "a slowdown multiplier must be within 1..100");
        }

        var (slow, index) = Slot(bucket);
        Volatile.Write(ref slow[index], multiplier);
    }

    /// <summary>One bucket's current multiplier.</summary>
    public double Get(BucketId bucket)
    {
        var (slow, index) = Slot(bucket);
        return Volatile.Read(ref slow[index]);
    }

    /// <summary>
    /// The extra layer passes one step owes: a pass of <paramref name="unitsPerPass"/> layer-equivalents in bucket
    /// <paramref name="index"/> of <paramref name="kind"/>. Call it exactly once per step.
    /// </summary>
    public int ShadowPasses(BucketKind kind, int index, double unitsPerPass) => kind == BucketKind.Prefill
        ? Owed(ref _prefillCredit[index], Volatile.Read(ref _prefill[index]), unitsPerPass)
        : Owed(ref _decodeCredit[index], Volatile.Read(ref _decode[index]), unitsPerPass);

    private static int Owed(ref double credit, double multiplier, double unitsPerPass)
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

    private (double[] Slow, int Index) Slot(BucketId bucket)
    {
        if (!_buckets.Contains(bucket))
        {
            throw new ArgumentOutOfRangeException(nameof(bucket), bucket.ToString(),
                $"'{bucket}' is not a bucket of this engine ({_buckets})");
        }

        return bucket.Kind == BucketKind.Prefill
            ? (_prefill, _buckets.PrefillIndex(bucket.Edge))
            : (_decode, _buckets.DecodeIndex(bucket.Edge));
    }
}
