using Microsoft.Extensions.Logging;

namespace Lens.Silo;

internal static partial class SiloLog
{
    [LoggerMessage(1, LogLevel.Warning, "Failed authentication from {Client} on {Path} ({Reason}); {Count} failure(s) since the last one logged")]
    public static partial void AuthFailures(ILogger logger, string client, string path, string reason, long count);

    [LoggerMessage(2, LogLevel.Information, "{Method} {Path}: refused the request body with {Status}: {Reason}")]
    public static partial void BadBody(ILogger logger, string method, string path, int status, string reason);

    [LoggerMessage(3, LogLevel.Information, "{Method} {Path}: the client went away before its request was read ({Reason})")]
    public static partial void ClientAborted(ILogger logger, string method, string path, string reason);

    [LoggerMessage(4, LogLevel.Warning, "{Method} {Path}: the cluster is unavailable ({Error}: {Reason}); answered 503")]
    public static partial void ClusterUnavailable(ILogger logger, string method, string path, string error, string reason);
}
