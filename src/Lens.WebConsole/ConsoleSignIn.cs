using System.Net;
using System.Security.Claims;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;

namespace Lens.WebConsole;

/// <summary>
/// Checks an API key typed into the console's sign-in form. Wrong keys are counted per client address: after
/// <see cref="FailuresPerWindow"/> of them within <see cref="Window"/> every attempt from that address is refused until the window
/// ends, so keys cannot be guessed through the form faster than that. The key is kept only inside the encrypted cookie ticket, to
/// end the session when the server's key changes.
/// </summary>
public sealed class ConsoleSignIn(Func<string, string?> resolveTenant, TimeProvider time) : IDisposable
{
    public const string Scheme = "LensConsole";
    public const string TenantClaim = "lens:tenant";
    public const int FailuresPerWindow = 5;
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);
    private const string KeyItem = "lens.key";

    // Addresses are bounded by the limiter's own idle-partition cleanup; a fixed window keeps the cost O(1) per attempt.
    private readonly PartitionedRateLimiter<string> _failures = PartitionedRateLimiter.Create<string, string>(address =>
        RateLimitPartition.GetFixedWindowLimiter(address, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = FailuresPerWindow,
            Window = Window,
            QueueLimit = 0,
            AutoReplenishment = true,
        }));

    /// <summary>What a sign-in attempt gave: a principal to sign in, or why not.</summary>
    public sealed record Outcome(ClaimsPrincipal? Principal, AuthenticationProperties? Properties, string? Error, bool Throttled);

    public Outcome Attempt(string? apiKey, IPAddress? address)
    {
        var partition = address?.ToString() ?? "unknown";
        using (var check = _failures.AttemptAcquire(partition, 0))
        {
            if (!check.IsAcquired)
            {
                return new Outcome(null, null, $"too many wrong keys from this address: wait {Window.TotalSeconds:0} seconds and try again", true);
            }
        }

        var key = apiKey?.Trim();
        if (string.IsNullOrEmpty(key))
        {
            return new Outcome(null, null, "enter your tenant's API key", false);
        }

        if (resolveTenant(key) is not { } tenant)
        {
            using var _ = _failures.AttemptAcquire(partition, 1);
            return new Outcome(null, null, "that API key is not valid for any tenant of this server", false);
        }

        var identity = new ClaimsIdentity([new Claim(TenantClaim, tenant), new Claim(ClaimTypes.Name, tenant)], Scheme, ClaimTypes.Name, null);
        var properties = new AuthenticationProperties { IsPersistent = false, IssuedUtc = time.GetUtcNow() };
        properties.Items[KeyItem] = key;
        return new Outcome(new ClaimsPrincipal(identity), properties, null, false);
    }

    /// <summary>Whether a cookie's key still belongs to the tenant it was issued for.</summary>
    public bool StillValid(ClaimsPrincipal? principal, AuthenticationProperties properties) =>
        principal.Tenant() is { } tenant && properties.Items.TryGetValue(KeyItem, out var key) && key is not null &&
        resolveTenant(key) == tenant;

    public void Dispose() => _failures.Dispose();
}
