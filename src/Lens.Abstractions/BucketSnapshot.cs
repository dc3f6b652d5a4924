using System.Text.Json.Serialization;

namespace Lens.Abstractions;

/// <summary>An estimate at one prompt length with its standard error (Core's <c>LengthEstimate</c>).</summary>
[GenerateSerializer, Immutable, Alias("lens.LengthEstimateDto.v1")]
public sealed record LengthEstimateDto([property: Id(0)] int InputLength, [property: Id(1)] double ValueMs, [property: Id(2)] double StandardError);

/// <summary>The repeats' relative excess over their statistic (Core's <c>RepeatExcess</c>), which intervals are calibrated on.</summary>
[GenerateSerializer, Immutable, Alias("lens.RepeatExcessDto.v1")]
public sealed record RepeatExcessDto([property: Id(0)] double[] E2e, [property: Id(1)] double[] E2eFloor, [property: Id(2)] double[] Ttft,
    [property: Id(3)] double[] TtftFloor);

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
    [property: Id(16), JsonIgnore] RepeatExcessDto? Excess = null);
