using System.Text.Json.Serialization;
using Lens.Core;

namespace Lens.Abstractions;

/// <summary>An estimate at one prompt length with its standard error (Core's <c>LengthEstimate</c>).</summary>
[GenerateSerializer, Immutable, Alias("lens.LengthEstimateDto.v1")]
public sealed record LengthEstimateDto([property: Id(0)] int InputLength, [property: Id(1)] double ValueMs, [property: Id(2)] double StandardError)
{
    public LengthEstimate ToCore() => new(InputLength, ValueMs, StandardError);

    public static LengthEstimateDto From(LengthEstimate e) => new(e.InputLength, e.ValueMs, e.StandardError);
}

/// <summary>The repeats' relative excess over their statistic (Core's <c>RepeatExcess</c>), which intervals are calibrated on.</summary>
[GenerateSerializer, Immutable, Alias("lens.RepeatExcessDto.v1")]
public sealed record RepeatExcessDto([property: Id(0)] double[] E2e, [property: Id(1)] double[] E2eFloor, [property: Id(2)] double[] Ttft,
    [property: Id(3)] double[] TtftFloor)
{
    public RepeatExcess ToCore() => new(E2e, E2eFloor, Ttft, TtftFloor);

    public static RepeatExcessDto? From(RepeatExcess? e) => e is null ? null : new(e.E2e, e.E2eFloor, e.Ttft, e.TtftFloor);
}

/// <summary>
/// The published state of one bucket: its fit (Core's <c>BucketFit</c>: step cost <c>S[d]</c> with its standard error for decode
/// buckets, estimates of <c>A[pre(I)]</c> and TTFT), how many measurements it rests on, a <see cref="Version"/> that grows on
/// every change of the fitted data, and whether it is <see cref="Stale"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.BucketSnapshot.v1")]
public sealed record BucketSnapshot(
    [property: Id(0)] string Bucket,
    [property: Id(1)] long Version,
    [property: Id(2)] double? StepMs,
    [property: Id(3)] double StepStandardError,
    [property: Id(4)] LengthEstimateDto[] PrefillEstimates,
    [property: Id(5)] LengthEstimateDto[] TtftEstimates,
    [property: Id(6)] int MeasurementCount,
    [property: Id(7)] int Points,
    [property: Id(8)] double RelativeNoise,
    [property: Id(9)] string? Warning,
    [property: Id(10)] bool IsComplete,
    [property: Id(11)] bool Stale,
    [property: Id(12)] DateTimeOffset? LastProfiled,
    [property: Id(13)] int TelemetryCount,
    [property: Id(14)] int PendingCount = 0,
    [property: Id(15)] BucketDrift? Drift = null,
    [property: Id(16), JsonIgnore] RepeatExcessDto? Excess = null)
{
    public BucketFit ToFit() => new(BucketId.Parse(Bucket), StepMs, StepStandardError, [.. PrefillEstimates.Select(e => e.ToCore())],
        [.. TtftEstimates.Select(e => e.ToCore())], MeasurementCount, Points, RelativeNoise, Warning, Excess?.ToCore());

    public static BucketSnapshot From(BucketFit fit, long version, bool stale, DateTimeOffset? lastProfiled, int telemetryCount,
        int pendingCount) =>
        new(fit.Bucket.ToString(), version, fit.StepMs, fit.StepStandardError, [.. fit.PrefillEstimates.Select(LengthEstimateDto.From)],
            [.. fit.TtftEstimates.Select(LengthEstimateDto.From)], fit.Measurements, fit.Points, fit.RelativeNoise, fit.Warning,
            fit.IsComplete, stale, lastProfiled, telemetryCount, pendingCount, Excess: RepeatExcessDto.From(fit.Excess));

    /// <summary>The snapshot of a bucket that has never been written.</summary>
    public static BucketSnapshot Empty(BucketId bucket) =>
        new(bucket.ToString(), 0, null, 0, [], [], 0, 0, 0, "no measurements", false, false, null, 0);
}
