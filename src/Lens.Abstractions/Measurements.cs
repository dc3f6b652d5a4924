namespace Lens.Abstractions;

/// <summary>Where a measurement came from.</summary>
[GenerateSerializer, Alias("lens.MeasurementSource")]
public enum MeasurementSource
{
    /// <summary>Timed by the service's own profiling run.</summary>
    Profile,

    /// <summary>Imported: measured elsewhere and sent in.</summary>
    Import,

    /// <summary>Observed in production and reported (intake only: not used by fits).</summary>
    Telemetry,
}

/// <summary>
/// One stored measurement. <see cref="Id"/> makes writes idempotent: a retried write of the same id is not counted twice.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.MeasurementRecord.v1")]
public sealed record MeasurementRecord(
    [property: Id(0)] string Id,
    [property: Id(1)] string Bucket,
    [property: Id(2)] int InputLength,
    [property: Id(3)] int OutputLength,
    [property: Id(4)] double E2eMs,
    [property: Id(5)] double? TtftMs,
    [property: Id(6)] MeasurementSource Source,
    [property: Id(7)] DateTimeOffset At,
    [property: Id(8)] int Batch = 1,
    [property: Id(9)] long? Group = null)
{
    /// <summary>The longest latency a measurement may report (a day, in ms): a larger one is a unit error or an attack on the fit.</summary>
    public const double MaxLatencyMs = 86_400_000;

    /// <summary>Why the numbers cannot be a latency, or null when they can.</summary>
    public static string? CheckValues(double e2eMs, double? ttftMs)
    {
        if (!double.IsFinite(e2eMs) || e2eMs <= 0 || e2eMs > MaxLatencyMs)
        {
            return $"e2eMs must be a positive finite number of at most {MaxLatencyMs} (a day); got {e2eMs}";
        }

        if (ttftMs is { } t && (!double.IsFinite(t) || t <= 0 || t > e2eMs))
        {
            return $"ttftMs must be positive, finite and at most e2eMs; got {t}";
        }

        return null;
    }
}

/// <summary>
/// One measured or observed request as a caller sends it; <see cref="Bucket"/> (e.g. <c>decode-256</c>) is optional.
/// <see cref="Batch"/> and <see cref="Group"/> say that it ran in a group of identical requests released at once (batch profiling).
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.MeasurementInput.v1")]
public sealed record MeasurementInput(
    [property: Id(0)] int InputLength,
    [property: Id(1)] int OutputLength,
    [property: Id(2)] double E2eMs,
    [property: Id(3)] double? TtftMs = null,
    [property: Id(4)] string? Bucket = null,
    [property: Id(5)] int Batch = 1,
    [property: Id(6)] long? Group = null);

/// <summary>
/// Measurements to import into a deployment. <see cref="Id"/> names the batch: the same id sent again adds nothing
/// (each measurement's id is <c>{batch id}:{index}</c>); without one the service draws a fresh id.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.MeasurementBatch.v1")]
public sealed record MeasurementBatch([property: Id(0)] MeasurementInput[] Measurements, [property: Id(1)] string? Id = null);

/// <summary>
/// What an import or a telemetry report stored. For telemetry, <see cref="Drifting"/> lists the buckets the analysis after the
/// batch flagged, and <see cref="Reprofiling"/> the bucket whose re-profile the batch started (sustained drift), if any.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.IntakeResult.v1")]
public sealed record IntakeResult(
    [property: Id(0)] string BatchId,
    [property: Id(1)] int Added,
    [property: Id(2)] int Duplicates,
    [property: Id(3)] string[] Buckets,
    [property: Id(4)] long ModelVersion,
    [property: Id(5)] string[]? Drifting = null,
    [property: Id(6)] string? Reprofiling = null);
