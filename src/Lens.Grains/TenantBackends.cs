namespace Lens.Grains;

/// <summary>
/// A backend the operator configured for one tenant: the endpoint it may profile and the key sent to it. A tenant names it; it
/// never sees the endpoint's key, and cannot name another tenant's backend.
/// </summary>
public sealed record TenantBackend(Uri Endpoint, string? ApiKey)
{
    /// <summary>The endpoint only: the key is never printed.</summary>
    public override string ToString() => $"TenantBackend {{ Endpoint = {Endpoint}, ApiKey = {(ApiKey is null ? "" : "[redacted]")} }}";
}

/// <summary>
/// Every tenant's configured backends (<c>Lens:Tenants:{tenant}:Backends:{name}</c>), looked up by the tenant of the calling grain's
/// key, never by request data (architecture.md, "Tenancy"). <see cref="AllowLocalAddresses"/> is the operator's explicit permission
/// to call loopback and link-local addresses (tests, a device on the silo's own machine); off by default.
/// </summary>
public sealed class TenantBackends(IReadOnlyDictionary<string, IReadOnlyDictionary<string, TenantBackend>> byTenant, bool allowLocalAddresses)
{
    /// <summary>No tenant has a backend: <c>openai</c> deployments are refused.</summary>
    public static TenantBackends None { get; } = new(new Dictionary<string, IReadOnlyDictionary<string, TenantBackend>>(), false);

    public bool AllowLocalAddresses { get; } = allowLocalAddresses;

    /// <summary>Backend <paramref name="name"/> of <paramref name="tenant"/>, or null when that tenant has none of that name.</summary>
    public TenantBackend? Find(string tenant, string? name) =>
        name is not null && byTenant.TryGetValue(tenant, out var backends) && backends.TryGetValue(name, out var backend) ? backend : null;

    /// <summary>The names <paramref name="tenant"/> may use, sorted (for error messages to that tenant).</summary>
    public IReadOnlyList<string> Names(string tenant) =>
        byTenant.TryGetValue(tenant, out var backends) ? [.. backends.Keys.Order(StringComparer.Ordinal)] : [];

    /// <summary>Why <paramref name="tenant"/> may not use backend <paramref name="name"/>, or null when it may.</summary>
    public string? Check(string tenant, string? name)
    {
        if (Find(tenant, name) is not null)
        {
            return null;
        }

        var names = Names(tenant);
        return $"no backend '{name}' is configured for your tenant; " +
               (names.Count == 0 ? "the operator has configured none (Lens:Tenants:{tenant}:Backends:{name}:Endpoint)" : $"configured: {string.Join(", ", names)}");
    }
}
