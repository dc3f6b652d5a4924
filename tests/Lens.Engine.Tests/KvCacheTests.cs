using Lens.Core;

namespace Lens.Engine.Tests;

/// <summary>The KV cache owner alone: buffers per slot and decode bucket, the prefill hand-off, copies when a step's bucket changes.</summary>
public sealed class KvCacheTests
{
    private const int Floats = 3; // floats per position: one layer, three K (or V) channels

    private static readonly BucketSet Buckets = new([8, 16], [8, 16, 32]);

    [Fact]
    public void Buffers_are_padded_to_each_buckets_span_and_one_more_before_append()
    {
        var after = new KvCache(Buckets, Floats, sequenceSlots: 2);
        var before = new KvCache(new BucketSet([8, 16], [8, 16, 32], DecodeConvention.BeforeAppend), Floats, sequenceSlots: 2);

        Assert.Equal([8, 16, 32], after.Spans.ToArray());
        Assert.Equal([9, 17, 33], before.Spans.ToArray());
        Assert.Equal(2, after.PadSlot); // the slot after the sequences' own
        for (var slot = 0; slot <= after.PadSlot; slot++)
        {
            for (var j = 0; j < 3; j++)
            {
                Assert.Equal(Floats * after.Spans[j], after.K(slot, j).Length);
                Assert.Equal(Floats * after.Spans[j], after.V(slot, j).Length);
            }
        }

        Assert.NotSame(after.K(0, 1), after.K(1, 1)); // each slot its own
    }

    [Fact]
    public void A_sequences_first_step_takes_its_prefills_real_positions_then_stays_until_the_bucket_changes()
    {
        var cache = new KvCache(Buckets, Floats, sequenceSlots: 2);
        var (k, v) = cache.BeginPrefill(slot: 1, paddedLength: 16);
        Assert.Equal(-1, cache.BucketOf(1));
        Fill(k, v, rows: Floats, stride: 16, length: 16); // the whole padded prefill, padding rows included

        Assert.Equal(CacheCopy.HandOff, cache.Prepare(slot: 1, j: 1, length: 11));
        Assert.Equal(1, cache.BucketOf(1));
        for (var c = 0; c < Floats; c++)
        {
            // The first I = 11 positions of each channel, re-strided from 16 (the prefill's) to the bucket's 16; padding not taken.
            Assert.Equal(Enumerable.Range(0, 11).Select(n => Value(c, n)), cache.K(1, 1).Skip(c * 16).Take(11));
            Assert.Equal(Enumerable.Range(0, 11).Select(n => -Value(c, n)), cache.V(1, 1).Skip(c * 16).Take(11));
            Assert.All(cache.K(1, 1).Skip((c * 16) + 11).Take(5), x => Assert.Equal(0f, x));
        }

        Assert.Equal(CacheCopy.None, cache.Prepare(1, 1, 11));
        Assert.Equal(-1, cache.BucketOf(0)); // the other slot untouched
        Assert.All(cache.K(0, 1), x => Assert.Equal(0f, x));
    }

    [Fact]
    public void Crossing_up_copies_the_whole_buffer_and_crossing_down_the_positions_the_shorter_holds()
    {
        var cache = new KvCache(Buckets, Floats, sequenceSlots: 1);
        _ = cache.BeginPrefill(0, 8);
        Assert.Equal(CacheCopy.HandOff, cache.Prepare(0, 0, 5));
        Fill(cache.K(0, 0), cache.V(0, 0), rows: Floats, stride: 8, length: 8);

        Assert.Equal(CacheCopy.Move, cache.Prepare(0, 2, 5)); // 8 -> 32: the batch's longest sequence crossed two edges
        for (var c = 0; c < Floats; c++)
        {
            Assert.Equal(Enumerable.Range(0, 8).Select(n => Value(c, n)), cache.K(0, 2).Skip(c * 32).Take(8));
            Assert.Equal(Enumerable.Range(0, 8).Select(n => -Value(c, n)), cache.V(0, 2).Skip(c * 32).Take(8));
        }

        Fill(cache.K(0, 2), cache.V(0, 2), rows: Floats, stride: 32, length: 32);
        Assert.Equal(CacheCopy.Move, cache.Prepare(0, 1, 5)); // 32 -> 16: the longest left
        for (var c = 0; c < Floats; c++)
        {
            Assert.Equal(Enumerable.Range(0, 16).Select(n => Value(c, n)), cache.K(0, 1).Skip(c * 16).Take(16));
        }

        Assert.Equal(1, cache.BucketOf(0));

        // A new sequence in the slot: its prefill is staged again and handed off, whatever bucket the last one ended in.
        _ = cache.BeginPrefill(0, 8);
        Assert.Equal(CacheCopy.HandOff, cache.Prepare(0, 1, 3));
    }

    private static float Value(int channel, int position) => (channel * 100) + position + 1;

    private static void Fill(float[] k, float[] v, int rows, int stride, int length)
    {
        for (var c = 0; c < rows; c++)
        {
            for (var n = 0; n < length; n++)
            {
                k[(c * stride) + n] = Value(c, n);
                v[(c * stride) + n] = -Value(c, n);
            }
        }
    }
}
