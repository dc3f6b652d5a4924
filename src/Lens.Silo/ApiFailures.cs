using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lens.Silo;

/// <summary>
/// Faults of a request that are not the server's bug, as problem responses logged in one line without a stack trace:
/// a body over the size limit (413) or broken off or malformed at the HTTP level (400), a client that went away, and the cluster
/// being unavailable during a silo failover (503 with <c>Retry-After</c>: the same call succeeds once membership settles).
/// </summary>
internal static class ApiFailures
{
    /// <summary>Seconds a client should wait before retrying a call the cluster could not serve.</summary>
    public const string RetryAfterSeconds = "1";

    /// <summary>The response for <paramref name="ex"/>, or null when it is a real fault (left to the exception handler, logged in full).</summary>
    public static IResult? Classify(HttpContext http, Exception ex)
    {
        var request = http.Request;
        switch (ex)
        {
            case BadHttpRequestException bad:
                SiloLog.BadBody(Logger(http), request.Method, request.Path.Value ?? "", bad.StatusCode, bad.Message);
                return Results.Problem(bad.Message, statusCode: bad.StatusCode,
                    title: bad.StatusCode == StatusCodes.Status413PayloadTooLarge ? "Request body too large" : "Bad request body");
            case OperationCanceledException or IOException when http.RequestAborted.IsCancellationRequested:
                SiloLog.ClientAborted(Logger(http), request.Method, request.Path.Value ?? "", ex.GetType().Name);
                return Results.Empty; // nobody is left to read an answer
            case Orleans.Runtime.OrleansMessageRejectionException or Orleans.Runtime.GatewayTooBusyException or TimeoutException
                or Orleans.Runtime.OrleansLifecycleCanceledException:
                SiloLog.ClusterUnavailable(Logger(http), request.Method, request.Path.Value ?? "", ex.GetType().Name, FirstLine(ex.Message));
                http.Response.Headers.RetryAfter = RetryAfterSeconds;
                return Results.Problem("the cluster could not serve the call right now (a silo is failing over or overloaded); retry it",
                    statusCode: StatusCodes.Status503ServiceUnavailable, title: "Service unavailable");
            default:
                return null;
        }
    }

    private static ILogger Logger(HttpContext http) => http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Lens.Silo.LensApi");

    private static string FirstLine(string text)
    {
        var end = text.AsSpan().IndexOfAny('\r', '\n');
        var line = end < 0 ? text : text[..end];
        return line.Length <= 200 ? line : line[..200] + "...";
    }
}
