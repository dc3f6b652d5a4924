using System.Diagnostics.CodeAnalysis;

namespace Lens.Abstractions;

/// <summary>
/// Names that appear in grain keys and routes (tenant, device, deployment): 1..64 of <c>[A-Za-z0-9._-]</c>. The key separator
/// <see cref="Separator"/> and every character Azure Table storage refuses or rewrites in keys (<c>/ \ # ?</c>, control
/// characters) are outside that set, so a formatted key parses back to the same parts wherever it was stored.
/// </summary>
public static class LensNames
{
    public const char Separator = '|';
    public const int MaxLength = 64;

    /// <summary>Why <paramref name="value"/> is not a valid name, or null when it is.</summary>
    public static string? Check(string? value, string what)
    {
        if (string.IsNullOrEmpty(value))
        {
            return $"{what} is empty; use 1..{MaxLength} of A-Z a-z 0-9 . _ -";
        }

        if (value.Length > MaxLength)
        {
            return $"{what} is {value.Length} characters long; at most {MaxLength} are allowed";
        }

        foreach (var c in value)
        {
            if (!IsAllowed(c))
            {
                return $"{what} '{Printable(value)}' contains '{Printable(c.ToString())}'; only A-Z a-z 0-9 . _ - are allowed";
            }
        }

        return null;
    }

    public static bool IsValid([NotNullWhen(true)] string? value) => Check(value, "name") is null;

    /// <summary>Throws <see cref="LensException"/> (validation) unless <paramref name="value"/> is a valid name.</summary>
    public static string Ensure(string? value, string what) =>
        Check(value, what) is { } reason ? throw LensException.Validation(what, reason) : value!;

    private static bool IsAllowed(char c) => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-';

    private static string Printable(string text) => new([.. text.Take(MaxLength + 8).Select(c => char.IsControl(c) ? '?' : c)]);

    /// <summary>The <paramref name="parts"/> parts of a grain key, or a <see cref="FormatException"/>.</summary>
    public static string[] Split(string key, int parts, string what)
    {
        ArgumentNullException.ThrowIfNull(key);
        var split = key.Split(Separator);
        if (split.Length != parts)
        {
            throw new FormatException($"'{key}' is not a {what} key: expected {parts} parts separated by '{Separator}', found {split.Length}");
        }

        return split;
    }

    /// <summary><paramref name="value"/> when it is a valid name, else a <see cref="FormatException"/> naming the key.</summary>
    public static string Part(string value, string what, string key) =>
        Check(value, what) is { } reason ? throw new FormatException($"'{key}': {reason}") : value;
}

/// <summary>Key of a <c>DeviceGrain</c>: <c>tenant|device</c>.</summary>
public sealed record DeviceKey
{
    public DeviceKey(string tenant, string device)
    {
        Tenant = LensNames.Ensure(tenant, "tenant");
        Device = LensNames.Ensure(device, "device");
    }

    public string Tenant { get; }

    public string Device { get; }

    public string Format() => $"{Tenant}{LensNames.Separator}{Device}";

    public DeploymentKey Deployment(string deployment) => new(Tenant, Device, deployment);

    public static DeviceKey Parse(string key)
    {
        var p = LensNames.Split(key, 2, "device");
        return new DeviceKey(LensNames.Part(p[0], "tenant", key), LensNames.Part(p[1], "device", key));
    }

    public override string ToString() => Format();
}

/// <summary>
/// Key of one deployment on a device: <c>tenant|device|deployment</c>. It keys the <c>DeploymentGrain</c> and its monitor, and a
/// <c>PredictorGrain</c> call names it.
/// </summary>
public sealed record DeploymentKey
{
    public DeploymentKey(string tenant, string device, string deployment)
    {
        Tenant = LensNames.Ensure(tenant, "tenant");
        Device = LensNames.Ensure(device, "device");
        Deployment = LensNames.Ensure(deployment, "deployment");
    }

    public string Tenant { get; }

    public string Device { get; }

    public string Deployment { get; }

    public DeviceKey DeviceKey => new(Tenant, Device);

    public string Format() => $"{Tenant}{LensNames.Separator}{Device}{LensNames.Separator}{Deployment}";

    /// <summary>
    /// The key of the <c>BucketGrain</c> of <paramref name="bucket"/> in this deployment, <c>tenant|device|deployment|bucket</c>; the
    /// bucket in its text form (<c>prefill-N</c>, <c>decode-N</c> or <c>decode-N-bB</c>, as <see cref="DeploymentInfo.Buckets"/> lists
    /// them). The service parses it back as a <c>BucketKey</c> (Lens.Grains), which accepts only that canonical form.
    /// </summary>
    public string BucketGrainKey(string bucket) => $"{Format()}{LensNames.Separator}{LensNames.Ensure(bucket, "bucket")}";

    public static DeploymentKey Parse(string key)
    {
        var p = LensNames.Split(key, 3, "deployment");
        return new DeploymentKey(LensNames.Part(p[0], "tenant", key), LensNames.Part(p[1], "device", key),
            LensNames.Part(p[2], "deployment", key));
    }

    public override string ToString() => Format();
}
