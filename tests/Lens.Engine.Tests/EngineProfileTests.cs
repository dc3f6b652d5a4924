using Lens.Core;

namespace Lens.Engine.Tests;

public sealed class EngineProfileTests
{
    private const string Valid = """
        { "name": "t", "layers": 2, "hidden": 64, "heads": 4, "kvHeads": 2, "ffn": 128, "vocab": 256, "seed": 1,
          "prefillBuckets": [16, 32], "decodeBuckets": [16, 32, 64], "convention": "after-append" }
        """;

    [Theory]
    [InlineData("tiny")]
    [InlineData("nxdi-small")]
    [InlineData("linear-small")]
    [InlineData("tiny-batch")]
    [InlineData("nxdi-small-batch")]
    public void Shipped_profiles_load_and_are_named_as_their_files(string name)
    {
        var profile = EngineProfiles.Load(name);
        Assert.Equal(name, profile.Name);
        Assert.Equal(1, profile.Threads);
        Assert.True(File.Exists(EngineProfiles.Path(name)));
        Assert.Contains(name, EngineProfiles.Names);
    }

    [Fact]
    public void Shipped_bucket_sets_follow_the_presets()
    {
        var nxdi = EngineProfiles.Load("nxdi-small").Validate();
        Assert.Equal(BucketPresets.NxdInference(1024, 2048), nxdi);
        var linear = EngineProfiles.Load("linear-small").Validate();
        Assert.Equal(BucketPresets.LinearSteps(128, 128, 512, 1024), linear);
        var nxdiBatch = EngineProfiles.Load("nxdi-small-batch");
        Assert.Equal(BucketPresets.NxdInference(512, 1024), nxdiBatch.Validate());
        Assert.Equal([1, 2, 4, 8], nxdiBatch.BatchBuckets);
        Assert.Equal(8, nxdiBatch.MaxNumSeqs);
        var tinyBatch = EngineProfiles.Load("tiny-batch");
        Assert.Equal((TestProfiles.Tiny with { Name = "tiny-batch", BatchBuckets = [1, 2, 4] }).ToJson(), tinyBatch.ToJson());
    }

    [Fact]
    public void Batch_buckets_default_to_one_at_a_time_and_round_trip()
    {
        var plain = EngineProfile.Parse(Valid, "x.json");
        Assert.Equal([1], plain.BatchBuckets);
        Assert.Equal(1, plain.MaxNumSeqs);
        var batched = EngineProfile.Parse(Valid.Replace("\"seed\": 1", "\"seed\": 1, \"batchBuckets\": [2, 8]", StringComparison.Ordinal));
        Assert.Equal([2, 8], batched.BatchBuckets);
        Assert.Equal(8, batched.MaxNumSeqs);
        Assert.Equal([2, 8], EngineProfile.Parse(batched.ToJson()).BatchBuckets);
    }

    [Fact]
    public void Unknown_shipped_profile_is_a_clear_error()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => EngineProfiles.Path("nope"));
        Assert.Contains("tiny", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parses_camel_case_with_convention_and_slowdown_and_round_trips()
    {
        var json = Valid.Replace("\"after-append\"", "\"before-append\", \"slowdown\": { \"decode-32\": 1.5 }", StringComparison.Ordinal);
        var profile = EngineProfile.Parse(json, "x.json");
        Assert.Equal(DecodeConvention.BeforeAppend, profile.Convention);
        Assert.Equal(1.5, profile.Slowdown!["decode-32"]);
        Assert.Equal(16, profile.HeadDim);
        var again = EngineProfile.Parse(profile.ToJson(), "again");
        Assert.Equal(profile.ToJson(), again.ToJson());
        Assert.Contains("\"kvHeads\": 2", profile.ToJson(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"layers\": 2", "\"layers\": 0", "layers", "1..64")]
    [InlineData("\"hidden\": 64", "\"hidden\": 60", "hidden", "multiple of heads")]
    [InlineData("\"kvHeads\": 2", "\"kvHeads\": 3", "kvHeads", "divide heads")]
    [InlineData("\"kvHeads\": 2", "\"kvHeads\": 8", "kvHeads", "1..4")]
    [InlineData("\"vocab\": 256", "\"vocab\": 1", "vocab", "2..1000000")]
    [InlineData("\"ffn\": 128", "\"ffn\": 0", "ffn", "1..65536")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"threads\": 0", "threads", "1..256")]
    [InlineData("\"name\": \"t\"", "\"name\": \"\"", "name", "1..128")]
    [InlineData("[16, 32],", "[32, 16],", "prefillBuckets", "not ascending")]
    [InlineData("[16, 32],", "[],", "prefillBuckets", "empty")]
    [InlineData("[16, 32, 64]", "[16, 16, 64]", "decodeBuckets", "twice")]
    [InlineData("[16, 32],", "[16, 128],", "prefillBuckets", "longest prompt")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"slowdown\": { \"decode-999\": 2 }", "slowdown.decode-999", "not a bucket")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"slowdown\": { \"decode-32\": 0.5 }", "slowdown.decode-32", "1..100")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"slowdown\": { \"fast-32\": 2 }", "slowdown.fast-32", "prefill-N or decode-N")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"batchBuckets\": []", "batchBuckets", "is empty")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"batchBuckets\": null", "batchBuckets", "is empty")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"batchBuckets\": [0, 2]", "batchBuckets", "1..256")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"batchBuckets\": [1, 257]", "batchBuckets", "1..256")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"batchBuckets\": [4, 2]", "batchBuckets", "strictly ascending")]
    [InlineData("\"seed\": 1", "\"seed\": 1, \"batchBuckets\": [2, 2]", "batchBuckets", "strictly ascending")]
    [InlineData("[16, 32, 64]", "[16, 32, 65536], \"batchBuckets\": [256]", "batchBuckets", "2 GiB")]
    public void Invalid_fields_are_named_with_their_allowed_range(string from, string to, string field, string hint)
    {
        var json = Valid.Replace(from, to, StringComparison.Ordinal);
        Assert.NotEqual(Valid, json);
        var ex = Assert.Throws<EngineProfileException>(() => EngineProfile.Parse(json, "bad.json"));
        Assert.Equal(field, ex.Field);
        Assert.Equal("bad.json", ex.ProfileSource);
        Assert.StartsWith("bad.json: ", ex.Message, StringComparison.Ordinal);
        Assert.Contains(hint, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ \"name\": ")]
    [InlineData("{ \"layers\": \"two\" }")]
    [InlineData("{ \"convention\": \"sideways\" }")]
    [InlineData("null")]
    public void Malformed_json_is_a_profile_error_naming_the_source(string json)
    {
        var ex = Assert.Throws<EngineProfileException>(() => EngineProfile.Parse(json, "broken.json"));
        Assert.StartsWith("broken.json: ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_file_is_a_profile_error_naming_the_path()
    {
        var path = Path.Combine(Path.GetTempPath(), $"lens-missing-{Guid.NewGuid():N}.json");
        var ex = Assert.Throws<EngineProfileException>(() => EngineProfile.Load(path));
        Assert.Equal(path, ex.ProfileSource);
    }

    [Fact]
    public void Create_validates_the_profile()
    {
        var bad = TestProfiles.Tiny with { Heads = 3 };
        var ex = Assert.Throws<EngineProfileException>(() => ReferenceEngine.Create(bad, warmup: false));
        Assert.Equal("hidden", ex.Field);
    }
}
