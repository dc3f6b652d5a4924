using System.Security.Cryptography;
using System.Text;

namespace Lens.Silo;

/// <summary>
/// Maps an API key to its tenant. Keys are compared as SHA-256 digests with <see cref="CryptographicOperations.FixedTimeEquals"/>,
/// against every tenant without stopping early, so the time taken says nothing about how much of a key matched. Keys are never logged.
/// </summary>
public sealed class TenantResolver
{
    private readonly (string Tenant, byte[] Digest)[] _tenants;

    public TenantResolver(IReadOnlyDictionary<string, string> tenants)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        _tenants = [.. tenants.Select(t => (t.Key, SHA256.HashData(Encoding.UTF8.GetBytes(t.Value))))];
    }

    /// <summary>The tenant whose key is <paramref name="apiKey"/>, or null.</summary>
    public string? Resolve(string? apiKey)
    {
        if (string.IsNullOrEmpty(apiKey) || apiKey.Length > 1024)
        {
            return null;
        }

        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(apiKey), digest);
        string? found = null;
        foreach (var (tenant, expected) in _tenants)
        {
            if (CryptographicOperations.FixedTimeEquals(digest, expected))
            {
                found = tenant;
            }
        }

        return found;
    }
}
