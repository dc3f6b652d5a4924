namespace Lens.Core.Tests;

public class BucketSetTests
{
    [Theory]
    [InlineData(new int[0], new[] { 128 }, "prefill buckets are empty")]
    [InlineData(new[] { 128 }, new int[0], "decode buckets are empty")]
    [InlineData(new[] { 0, 128 }, new[] { 128 }, "prefill bucket #1 is 0; bucket lengths must be positive")]
    [InlineData(new[] { 128 }, new[] { -5, 128 }, "decode bucket #1 is -5")]
    [InlineData(new[] { 256, 128 }, new[] { 256 }, "prefill buckets are not ascending: #1 is 256, #2 is 128")]
    [InlineData(new[] { 128, 128 }, new[] { 256 }, "prefill bucket 128 appears twice (#1 and #2)")]
    [InlineData(new[] { 128, 512 }, new[] { 128, 256 }, "the longest prompt (prefill bucket 512) is above the longest sequence (decode bucket 256)")]
    public void Invalid_bucket_sets_name_the_problem(int[] prefill, int[] decode, string expected)
    {
        var ex = Assert.Throws<BucketSetException>(() => new BucketSet(prefill, decode));
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void ParseEdges_rejects_non_integers_by_position()
    {
        var ex = Assert.Throws<BucketSetException>(() => BucketSet.ParseEdges("128, x2,512", "decode"));
        Assert.Equal("decode bucket #2 'x2' is not an integer", ex.Message);
        Assert.Equal([128, 256], BucketSet.ParseEdges(" 128 ,256", "prefill"));
    }

    [Fact]
    public void Bucket_choice_follows_method_md()
    {
        var b = new BucketSet([128, 256], [128, 256, 512]);
        Assert.Equal(0, b.PrefillIndex(1));
        Assert.Equal(0, b.PrefillIndex(128));
        Assert.Equal(1, b.PrefillIndex(129));
        Assert.Equal(-1, b.PrefillIndex(257));
        Assert.Equal(2, b.DecodeIndex(257));
        Assert.Equal(-1, b.DecodeIndex(513));
        Assert.Equal(130, b.StepLength(128, 2));
        var before = new BucketSet([128, 256], [128, 256, 512], DecodeConvention.BeforeAppend);
        Assert.Equal(129, before.StepLength(128, 2));
    }

    [Theory]
    [InlineData(0, 1, "input length 0 is below 1")]
    [InlineData(1, 0, "output length 0 is below 1")]
    [InlineData(257, 1, "input length 257 is above the longest prefill bucket 256 (allowed 1..256)")]
    [InlineData(256, 257, "input length 256 + output length 257 = 513 is above the longest decode bucket 512 (allowed I + O <= 512)")]
    public void Requests_outside_the_buckets_are_rejected(int input, int output, string expected)
    {
        var b = new BucketSet([128, 256], [128, 256, 512]);
        Assert.Equal(expected, b.CheckRequest(input, output));
        Assert.Equal(expected, Assert.Throws<RequestOutOfRangeException>(() => b.EnsureRequest(input, output)).Message);
        Assert.Null(b.CheckRequest(256, 256));
    }

    [Fact]
    public void Presets_follow_the_stacks_rules()
    {
        var nxdi = BucketPresets.NxdInference(2048, 2048);
        Assert.Equal([128, 256, 512, 1024, 2048], nxdi.Prefill.ToArray());
        var odd = BucketPresets.NxdInference(1000, 3000);
        Assert.Equal([128, 256, 512, 1000], odd.Prefill.ToArray());
        Assert.Equal([128, 256, 512, 1024, 2048, 3000], odd.Decode.ToArray());
        var neuronx = BucketPresets.TransformersNeuronx(1024);
        Assert.Equal([128, 256, 512, 1024], neuronx.Decode.ToArray());
        Assert.Equal([64, 128, 256, 512], neuronx.Prefill.ToArray());
        Assert.Equal([100, 300, 500, 550], BucketPresets.Linear(100, 200, 550));
        Assert.Contains("unknown preset 'tpu'", Assert.Throws<BucketSetException>(() => BucketPresets.Create("tpu", 1, 1)).Message);
        Assert.Throws<BucketSetException>(() => BucketPresets.Linear(0, 1, 10));
    }

    [Fact]
    public void BucketId_round_trips_and_rejects_garbage()
    {
        var id = new BucketId(BucketKind.Decode, 512);
        Assert.Equal("decode-512", id.ToString());
        Assert.Equal(id, BucketId.Parse("decode-512"));
        Assert.Equal(new BucketId(BucketKind.Prefill, 7), BucketId.Parse("PREFILL-7"));
        foreach (var bad in new[] { "", "decode", "decode-", "decode-0", "decode--3", "tile-4", "decode-1x" })
        {
            Assert.False(BucketId.TryParse(bad, out _), bad);
        }
    }
}
