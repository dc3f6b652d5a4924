using Microsoft.Extensions.Logging;

namespace Lens.Grains;

internal static partial class GrainLog
{
    [LoggerMessage(1, LogLevel.Information, "Profile run {RunId} of {Deployment} on {Device} queued: {Total} measurements ({Scope})")]
    public static partial void RunQueued(ILogger logger, string runId, string deployment, string device, int total, string scope);

    [LoggerMessage(2, LogLevel.Information, "Profile run {RunId} of {Deployment} on {Device} finished: {State} after {Done} of {Total}")]
    public static partial void RunFinished(ILogger logger, string runId, string deployment, string device, string state, int done, int total);

    [LoggerMessage(3, LogLevel.Warning, "Transient measurement fault on {Device}, attempt {Attempt}: {Reason}; retrying in {Delay}")]
    public static partial void TransientFault(ILogger logger, string device, int attempt, string reason, TimeSpan delay);

    [LoggerMessage(4, LogLevel.Warning, "Profile worker of {Device} stopped by an error")]
    public static partial void WorkerFailed(ILogger logger, Exception exception, string device);

    [LoggerMessage(5, LogLevel.Information, "Resuming profile work on {Device}: {Runs} unfinished run(s)")]
    public static partial void Resuming(ILogger logger, string device, int runs);

    [LoggerMessage(6, LogLevel.Information, "Sustained drift of {Bucket} in {Deployment} on {Device}: marked stale, re-profiling {Target}")]
    public static partial void DriftReprofile(ILogger logger, string deployment, string device, string bucket, string target);

    [LoggerMessage(9, LogLevel.Information, "Live traffic flagged {Cell} of {Deployment} on {Device}: marked stale, re-profiling {Target} alone (run {RunId})")]
    public static partial void TrafficReprofile(ILogger logger, string deployment, string device, string cell, string target, string runId);

    [LoggerMessage(7, LogLevel.Warning, "A model change of {Deployment} did not reach one silo's model cache; it is unsubscribed until it renews")]
    public static partial void PushFailed(ILogger logger, Exception exception, string deployment);

    [LoggerMessage(8, LogLevel.Information, "A model change of {Deployment} did not reach a silo that is gone or stopping ({Reason}); it is unsubscribed")]
    public static partial void PushToGoneSilo(ILogger logger, string deployment, string reason);
}
