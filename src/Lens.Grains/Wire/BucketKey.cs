using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// Key of a <c>BucketGrain</c>: <c>tenant|device|deployment|bucket</c>, the bucket as <c>prefill-N</c> or <c>decode-N</c>. The
/// service's parsed form of <see cref="DeploymentKey.BucketGrainKey"/> (it holds Core's <see cref="BucketId"/>, so it lives here and
/// not in the wire types).
/// </summary>
public sealed record BucketKey
{
    public BucketKey(string tenant, string device, string deployment, BucketId bucket)
    {
        Tenant = LensNames.Ensure(tenant, "tenant");
        Device = LensNames.Ensure(device, "device");
        Deployment = LensNames.Ensure(deployment, "deployment");
        if (bucket.Edge <= 0 || !Enum.IsDefined(bucket.Kind))
        {
            throw LensException.Validation("bucket", $"bucket {bucket} is not a bucket");
        }

        Bucket = bucket;
    }

    public string Tenant { get; }

    public string Device { get; }

    public string Deployment { get; }

    public BucketId Bucket { get; }

    public DeploymentKey DeploymentKey => new(Tenant, Device, Deployment);

    public string Format() =>
        $"{Tenant}{LensNames.Separator}{Device}{LensNames.Separator}{Deployment}{LensNames.Separator}{Bucket}";

    public static BucketKey Parse(string key)
    {
        var p = LensNames.Split(key, 4, "bucket");

        // Only the canonical text form (prefill-128, not Prefill-0128) parses, so a key has exactly one spelling.
        if (!BucketId.TryParse(p[3], out var bucket) || bucket.ToString() != p[3])
        {
            throw new FormatException($"'{key}': '{p[3]}' is not a bucket; expected prefill-N or decode-N");
        }

        return new BucketKey(LensNames.Part(p[0], "tenant", key), LensNames.Part(p[1], "device", key),
            LensNames.Part(p[2], "deployment", key), bucket);
    }

    public override string ToString() => Format();
}

/// <summary>Bucket keys from a deployment's key and Core's <see cref="BucketId"/>.</summary>
public static class BucketKeys
{
    extension(DeploymentKey key)
    {
        public BucketKey Bucket(BucketId bucket) => new(key.Tenant, key.Device, key.Deployment, bucket);
    }
}
