namespace Lens.Core;

/// <summary>
/// One timed request: <paramref name="InputLength"/> prompt tokens, <paramref name="OutputLength"/> output tokens (the first one
/// produced by prefill), its end-to-end latency and, when the backend streams, its time to first token.
/// <paramref name="Bucket"/> names the bucket whose profile the request belongs to; null means "infer from the lengths".
/// <paramref name="Batch"/> is the size of the group of identical requests released at once that it was part of (1: alone), and
/// <paramref name="Group"/> identifies that group (null: unknown, each row stands alone); a grouped request's times run from the
/// group's release (method.md, "Batched serving").
/// </summary>
public readonly record struct Measurement(
    int InputLength, int OutputLength, double E2eMs, double? TtftMs = null, BucketId? Bucket = null, int Batch = 1, long? Group = null);

/// <summary>A request to predict: prompt and output lengths.</summary>
public readonly record struct RequestPair(int InputLength, int OutputLength);
