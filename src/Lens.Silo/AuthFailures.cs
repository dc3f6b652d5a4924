using System.Diagnostics.Metrics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Lens.Grains;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Lens.Silo;

/// <summary>
/// A budget of failed authentications per client address (a fixed window, no queue): once a client has spent it, its further
/// failures are answered 429 with <c>Retry-After</c> before any key is compared, while requests with a valid key are never
/// counted nor slowed. Failures are counted in <c>lens.auth.failures</c> (by reason) and logged as a sample: the first, then at
/// most one line per <see cref="LogEvery"/> with the count since the last.
/// </summary>
public sealed class AuthFailures : IDisposable
{
    internal static readonly TimeSpan LogEvery = TimeSpan.FromSeconds(10);

    private static readonly Counter<long> Failures = LensTelemetry.Meter.CreateCounter<long>("lens.auth.failures", "{request}",
        "Requests refused for a missing or wrong API key (reason missing, unknown) or because their address spent its failure budget (throttled)");

    private readonly PartitionedRateLimiter<string> _limiter;
    private readonly TimeSpan _window;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private long _unlogged;
    private long _nextLog;

    public AuthFailures(int permitsPerWindow, TimeSpan window, TimeProvider time, ILogger<AuthFailures> logger)
    {
        _window = window;
        _time = time;
        _logger = logger;
        _limiter = PartitionedRateLimiter.Create<string, string>(client => RateLimitPartition.GetFixedWindowLimiter(client,
            _ => new FixedWindowRateLimiterOptions { PermitLimit = permitsPerWindow, Window = window, QueueLimit = 0, AutoReplenishment = true }));
    }

    /// <summary>
    /// Whether <paramref name="http"/>'s client has spent its budget; if so, the 429 to answer (with <c>Retry-After</c> set).
    /// Call before comparing a key, so that a throttled client costs no hashing.
    /// </summary>
    public IResult? Throttled(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (_limiter.GetStatistics(Client(http))?.CurrentAvailablePermits is not 0)
        {
            return null;
        }

        Record(http, "throttled");
        http.Response.Headers.RetryAfter = Seconds(_window);
        return Results.Problem("too many failed authentications from this address; retry later with a valid key",
            statusCode: StatusCodes.Status429TooManyRequests, title: "Too many failed authentications");
    }

    /// <summary>Counts one failed authentication of <paramref name="http"/>'s client (<paramref name="reason"/>: missing or unknown).</summary>
    public void Failed(HttpContext http, string reason)
    {
        ArgumentNullException.ThrowIfNull(http);
        using var lease = _limiter.AttemptAcquire(Client(http));
        Record(http, reason);
    }

    private void Record(HttpContext http, string reason)
    {
        Failures.Add(1, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, reason));
        var count = Interlocked.Increment(ref _unlogged);
        var now = _time.GetTimestamp();
        var next = Interlocked.Read(ref _nextLog);
        if (now >= next && Interlocked.CompareExchange(ref _nextLog, now + (long)(LogEvery.TotalSeconds * _time.TimestampFrequency), next) == next)
        {
            Interlocked.Add(ref _unlogged, -count);
            SiloLog.AuthFailures(_logger, Client(http), http.Request.Path.Value ?? "", reason, count);
        }
    }

    private static string Client(HttpContext http) => http.Connection.RemoteIpAddress?.ToString() ?? "unknown";

    public void Dispose() => _limiter.Dispose();

    /// <summary>Fixed-time comparison of a presented key with the expected one (as SHA-256 digests, so lengths leak nothing).</summary>
    internal static bool SameKey(string? presented, byte[] expectedDigest)
    {
        if (string.IsNullOrEmpty(presented) || presented.Length > 1024)
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), expectedDigest);
    }

    internal static string Seconds(TimeSpan span) => Math.Max(1, (int)Math.Ceiling(span.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
}
