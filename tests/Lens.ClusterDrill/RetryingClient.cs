using System.Diagnostics;
using Lens.Client;

namespace Lens.ClusterDrill;

/// <summary>
/// How a call went: the attempts that failed before the one that answered (<see cref="Unreachable"/>: no connection, e.g. a killed
/// silo's port; <see cref="ServerErrors"/>: a 5xx, e.g. a grain that lived on a silo not yet declared dead; <see cref="Timeouts"/>),
/// and the silo that answered.
/// </summary>
public record RetryResult(int Unreachable, int ServerErrors, int Timeouts, int Silo)
{
    public int FailedAttempts => Unreachable + ServerErrors + Timeouts;
}

public sealed record RetryResult<T>(T Value, int Unreachable, int ServerErrors, int Timeouts, int Silo)
    : RetryResult(Unreachable, ServerErrors, Timeouts, Silo);

/// <summary>
/// Client-side retry over several LENS servers, as a caller of a cluster does: each call starts at the next server in turn; a
/// refused connection, a timeout or a 5xx moves it to the next server after a short backoff, until <see cref="Deadline"/>.
/// 4xx answers are the caller's own mistakes and are not retried.
/// </summary>
public sealed class RetryingClient(IReadOnlyList<LensHttpClient> servers)
{
    private readonly int[] _servedBy = new int[servers.Count];
    private int _next;

    public TimeSpan Deadline { get; init; } = TimeSpan.FromMinutes(2);

    public int[] ServedBySilo => [.. _servedBy];

    public async Task<RetryResult<T>> RunAsync<T>(Func<LensHttpClient, Task<T>> call, CancellationToken cancellationToken)
    {
        var start = (Interlocked.Increment(ref _next) & int.MaxValue) % servers.Count;
        var clock = Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(100);
        int unreachable = 0, serverErrors = 0, timeouts = 0;
        for (var attempt = 0; ; attempt++)
        {
            var server = (start + attempt) % servers.Count;
            try
            {
                var value = await call(servers[server]);
                Interlocked.Increment(ref _servedBy[server]);
                return new RetryResult<T>(value, unreachable, serverErrors, timeouts, server);
            }
            catch (Exception ex) when (Transient(ex, cancellationToken) && clock.Elapsed + delay < Deadline)
            {
                if (ex is HttpRequestException)
                {
                    unreachable++;
                }
                else if (ex is TaskCanceledException)
                {
                    timeouts++;
                }
                else
                {
                    serverErrors++;
                }
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    private static bool Transient(Exception ex, CancellationToken cancellationToken) => ex switch
    {
        HttpRequestException => true,
        TaskCanceledException => !cancellationToken.IsCancellationRequested, // the attempt's own timeout
        LensApiException api => api.Status >= 500,
        _ => false,
    };
}
