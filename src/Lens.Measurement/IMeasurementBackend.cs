namespace Lens.Measurement;

/// <summary>One timed request: what was asked and what was seen, on a monotonic clock.</summary>
/// <param name="InputLength">Prompt tokens the server reported (must equal the request's).</param>
/// <param name="OutputLength">Output tokens the server reported (must equal the request's).</param>
/// <param name="E2eMs">From sending the request to its last byte.</param>
/// <param name="TtftMs">To the first token, where the backend streams; null otherwise.</param>
/// <param name="TokenGapsMs">Gaps between streamed token chunks, where seen.</param>
public sealed record TimedRequest(int InputLength, int OutputLength, double E2eMs, double? TtftMs, IReadOnlyList<double>? TokenGapsMs = null);

/// <summary>
/// "Run this request (I, O) and time it" (architecture.md, layer 2). Implementations: an OpenAI-compatible endpoint, a CSV of
/// measurements made elsewhere, the built-in reference engine. One call is one request; callers serialize calls per device.
/// </summary>
public interface IMeasurementBackend
{
    /// <summary>A short description for logs and progress (never a secret).</summary>
    string Describe { get; }

    /// <summary>
    /// Times one request of exactly <paramref name="inputLength"/> prompt and <paramref name="outputLength"/> output tokens.
    /// Throws <see cref="MeasurementFailedException"/> when the request failed or the server's token counts differ.
    /// </summary>
    Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default);
}

/// <summary>A measurement that failed: the reason, and whether trying again may succeed (timeouts, 5xx, refused connections).</summary>
public sealed class MeasurementFailedException(string reason, bool isTransient, Exception? inner = null) : Exception(reason, inner)
{
    public bool IsTransient { get; } = isTransient;
}
