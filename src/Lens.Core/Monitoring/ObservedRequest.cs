namespace Lens.Core;

/// <summary>
/// One request a production server served, as its own telemetry saw it (method.md, "Live traffic"): when it arrived, its prompt and
/// output lengths, its time to first token and end-to-end latency (queueing included), and where known the time it waited in the
/// server's queue and the replica that served it. Times in ms; <see cref="ArrivalMs"/> on any clock shared by a window's requests
/// (an OpenTelemetry span's start in Unix ms, or a trace's offset).
/// </summary>
public readonly record struct ObservedRequest(
    double ArrivalMs, int InputLength, int OutputLength, double TtftMs, double E2eMs, double? QueueMs = null, string? Replica = null)
{
    /// <summary>Longest prompt or output an observation may claim (2^24 tokens): beyond any served model, so a bad value is named.</summary>
    public const int MaxLength = 1 << 24;

    /// <summary>Longest replica name kept (characters); a longer one is refused rather than cut, so two replicas never merge.</summary>
    public const int MaxReplicaLength = 128;

    /// <summary>
    /// The request as its server saw it, from a client's timing of it (<c>lens replay</c>'s rows): the client timed TTFT and E2E from
    /// the request's scheduled arrival, and sent it <paramref name="sendLagMs"/> later (its own delay, which no server span holds);
    /// the server saw it arrive then, and its latencies are shorter by that much.
    /// </summary>
    public static ObservedRequest FromClient(double scheduledArrivalMs, int inputLength, int outputLength, double ttftMs, double e2eMs,
        double sendLagMs) => new(scheduledArrivalMs + sendLagMs, inputLength, outputLength, ttftMs - sendLagMs, e2eMs - sendLagMs);

    /// <summary>Why a client's send lag cannot belong to a request whose TTFT it timed as <paramref name="ttftMs"/>, or null.</summary>
    public static string? SendLagProblem(double sendLagMs, double ttftMs) => double.IsFinite(sendLagMs) && sendLagMs >= 0 && sendLagMs < ttftMs
        ? null
        : $"send lag {sendLagMs} ms is out of range (allowed 0..below the time to first token, {ttftMs} ms)";

    /// <summary>Why these values cannot be one served request (the field and the allowed range), or null when they can.</summary>
    public static string? Problem(double arrivalMs, long inputLength, long outputLength, double ttftMs, double e2eMs, double? queueMs, string? replica)
    {
        if (!double.IsFinite(arrivalMs) || arrivalMs < 0)
        {
            return $"arrival {arrivalMs} is not a time (a finite number of ms >= 0)";
        }

        if (inputLength is < 1 or > MaxLength)
        {
            return $"prompt tokens {inputLength} out of range (allowed 1..{MaxLength})";
        }

        if (outputLength is < 1 or > MaxLength)
        {
            return $"completion tokens {outputLength} out of range (allowed 1..{MaxLength})";
        }

        if (!double.IsFinite(ttftMs) || ttftMs <= 0)
        {
            return $"time to first token {ttftMs} ms is not a latency (a finite number above 0)";
        }

        if (!double.IsFinite(e2eMs) || e2eMs < ttftMs)
        {
            return $"end-to-end latency {e2eMs} ms is not a latency at least the time to first token ({ttftMs} ms)";
        }

        if (queueMs is { } q && (!double.IsFinite(q) || q < 0 || q > ttftMs))
        {
            return $"time in queue {q} ms is out of range (allowed 0..the time to first token, {ttftMs} ms)";
        }

        if (replica is not null && (replica.Length is 0 or > MaxReplicaLength))
        {
            return $"replica name has {replica.Length} characters (allowed 1..{MaxReplicaLength})";
        }

        return null;
    }
}
