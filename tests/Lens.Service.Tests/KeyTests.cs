using Lens.Abstractions;
using Lens.Core;
using Lens.Grains;

namespace Lens.Service.Tests;

public sealed class KeyTests
{
    [Theory]
    [InlineData("acme", "npu-0", "llama.v1_a-0123456789", "decode-1024")]
    [InlineData("A", "b", "c", "prefill-1")]
    [InlineData("t.e_s-t", "...", "---", "prefill-128")]
    public void Keys_round_trip(string tenant, string device, string deployment, string bucket)
    {
        var b = new BucketKey(tenant, device, deployment, BucketId.Parse(bucket));
        Assert.Equal(b, BucketKey.Parse(b.Format()));
        Assert.Equal($"{tenant}|{device}|{deployment}|{bucket}", b.Format());
        Assert.Equal(b.DeploymentKey, DeploymentKey.Parse(b.DeploymentKey.Format()));
        Assert.Equal(b.DeploymentKey.DeviceKey, DeviceKey.Parse(b.DeploymentKey.DeviceKey.Format()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("a|b")]
    [InlineData("a b")]
    [InlineData("a#b")]
    [InlineData("a?b")]
    [InlineData("a\\b")]
    [InlineData("é")]
    [InlineData("a\nb")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123456789")]
    public void Bad_names_are_rejected(string name)
    {
        Assert.NotNull(LensNames.Check(name, "device"));
        var ex = Assert.Throws<LensException>(() => new DeviceKey("acme", name));
        Assert.Equal(LensErrorKind.Validation, ex.Kind);
    }

    [Theory]
    [InlineData("acme")]
    [InlineData("acme|npu|x")]
    [InlineData("ac/me|npu")]
    [InlineData("|npu")]
    public void Bad_device_keys_do_not_parse(string key) => Assert.ThrowsAny<Exception>(() => DeviceKey.Parse(key));

    [Theory]
    [InlineData("acme|npu|dep|Decode-128")]
    [InlineData("acme|npu|dep|decode-0128")]
    [InlineData("acme|npu|dep|decode-0")]
    [InlineData("acme|npu|dep|middle-128")]
    [InlineData("acme|npu|dep")]
    public void Bad_bucket_keys_do_not_parse(string key) => Assert.ThrowsAny<Exception>(() => BucketKey.Parse(key));

    [Fact]
    public void Identity_covers_the_configuration_and_not_the_backend()
    {
        var spec = TestModels.Spec("llama");
        Assert.Equal(spec.IdentityHash, (spec with { Backend = spec.Backend with { Noise = 0.1 } }).IdentityHash);
        Assert.NotEqual(spec.IdentityHash, (spec with { BatchSize = 4 }).IdentityHash);
        Assert.NotEqual(spec.IdentityHash, (spec with { TensorParallel = 2 }).IdentityHash);
        Assert.NotEqual(spec.IdentityHash, (spec with { DecodeBuckets = [128, 256, 512, 2048] }).IdentityHash);
        Assert.NotEqual(spec.IdentityHash, (spec with { Convention = Conventions.BeforeAppend }).IdentityHash);
        Assert.Matches("^llama-[0-9a-f]{10}$", spec.DeploymentId);
        Assert.True(LensNames.IsValid(spec.DeploymentId));
        Assert.Empty(spec.Validate());
        Assert.True(spec.SameAs(TestModels.Spec("llama")));
        Assert.False(spec.SameAs(TestModels.Spec("llama", repeats: 2)));
    }
}
