using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>Wire forms of live-traffic monitoring: Core's <see cref="TrafficEstimate"/> as the SDK's <see cref="TrafficEstimateRecord"/>.</summary>
public static class TrafficMapping
{
    extension(TrafficEstimate estimate)
    {
        public TrafficEstimateRecord ToRecord() => new(estimate.Cell.ToString(), estimate.CostMs, estimate.ProfiledMs, estimate.Steps,
            estimate.WindowStartMs, estimate.WindowEndMs, estimate.EstimatedAt);
    }

    extension(TrafficEstimateRecord record)
    {
        /// <summary>Core's estimate; throws <see cref="FormatException"/> for a cell name that is not one.</summary>
        public TrafficEstimate ToCore() => new(BucketId.Parse(record.Cell), record.CostMs, record.ProfiledMs, record.Steps, record.WindowStartMs,
            record.WindowEndMs, record.EstimatedAt);
    }
}
