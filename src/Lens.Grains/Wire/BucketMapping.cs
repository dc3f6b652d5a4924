using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// The wire records of a bucket's state (Lens.Abstractions: <see cref="BucketSnapshot"/>, <see cref="MeasurementRecord"/>,
/// <see cref="HealthHistoryEntry"/>) to and from Core's types. Kept out of the wire types so that the client SDK carries no Core.
/// </summary>
public static class BucketMapping
{
    extension(LengthEstimateDto dto)
    {
        public LengthEstimate ToCore() => new(dto.InputLength, dto.ValueMs, dto.StandardError);
    }

    extension(LengthEstimateDto)
    {
        public static LengthEstimateDto From(LengthEstimate e) => new(e.InputLength, e.ValueMs, e.StandardError);
    }

    extension(RepeatExcessDto dto)
    {
        public RepeatExcess ToCore() => new(dto.E2e, dto.E2eFloor, dto.Ttft, dto.TtftFloor);
    }

    extension(RepeatExcessDto)
    {
        public static RepeatExcessDto? From(RepeatExcess? e) => e is null ? null : new(e.E2e, e.E2eFloor, e.Ttft, e.TtftFloor);
    }

    extension(BucketSnapshot snapshot)
    {
        public BucketFit ToFit() => new(BucketId.Parse(snapshot.Bucket), snapshot.StepMs, snapshot.StepStandardError,
            [.. snapshot.PrefillEstimates.Select(e => e.ToCore())], [.. snapshot.TtftEstimates.Select(e => e.ToCore())],
            snapshot.MeasurementCount, snapshot.Points, snapshot.RelativeNoise, snapshot.Warning, snapshot.Excess?.ToCore());
    }

    extension(BucketSnapshot)
    {
        public static BucketSnapshot From(BucketFit fit, long version, bool stale, DateTimeOffset? lastProfiled, int telemetryCount,
            int pendingCount) =>
            new(fit.Bucket.ToString(), version, fit.StepMs, fit.StepStandardError, [.. fit.PrefillEstimates.Select(LengthEstimateDto.From)],
                [.. fit.TtftEstimates.Select(LengthEstimateDto.From)], fit.Measurements, fit.Points, fit.RelativeNoise, fit.Warning,
                fit.IsComplete, stale, lastProfiled, telemetryCount, pendingCount, Excess: RepeatExcessDto.From(fit.Excess));

        /// <summary>The snapshot of a bucket that has never been written.</summary>
        public static BucketSnapshot Empty(BucketId bucket) =>
            new(bucket.ToString(), 0, null, 0, [], [], 0, 0, 0, "no measurements", false, false, null, 0);
    }

    extension(MeasurementRecord record)
    {
        /// <summary>The core's measurement; records stored before batch buckets existed read as batch 1.</summary>
        public MeasuredRequest ToMeasurement() => new(record.InputLength, record.OutputLength, record.E2eMs, record.TtftMs,
            BucketId.Parse(record.Bucket), Math.Max(1, record.Batch), record.Group);
    }

    extension(HealthHistoryEntry)
    {
        public static HealthHistoryEntry From(HealthSample s)
        {
            ArgumentNullException.ThrowIfNull(s);
            return new(s.At, s.CommonShift, s.Drifting, s.Observations, s.MeanApe, s.Shift, s.Band, s.ConsecutiveDrift, s.Stale);
        }
    }
}
