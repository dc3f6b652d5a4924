using System.Diagnostics;
using Lens.Core;

namespace Lens.Measurement;

// Warm-up: untimed requests before timing starts, because a device's first calls of a shape compile or load graphs.
public sealed partial class ProfileRunner
{
    /// <summary>
    /// Warms up each bucket that has rows left with its largest pending request (it touches the most graphs),
    /// <see cref="ProfileRunOptions.WarmupsPerBucket"/> times. Failures count like any other (they may stop the run).
    /// </summary>
    private async Task WarmUpAsync(IReadOnlyList<PlanRow> pending, RunState state, Stopwatch clock, CancellationToken cancellationToken)
    {
        var warmRows = pending
            .GroupBy(r => r.Bucket)
            .Select(g => g.OrderByDescending(r => (long)r.InputLength + r.OutputLength).First())
            .ToArray();
        var total = warmRows.Length * _options.WarmupsPerBucket;
        var done = 0;
        var deviceTime = TimeSpan.Zero;
        foreach (var row in warmRows)
        {
            for (var n = 0; n < _options.WarmupsPerBucket; n++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                TimeSpan? eta = done > 0 ? deviceTime / done * (total - done) : null;
                _options.Progress?.Report(new MeasurementProgress(ProfilePhase.WarmUp, done, total, row, clock.Elapsed, eta));
                var (results, took) = await MeasureAsync(row, state, cancellationToken, warmUp: true);
                deviceTime += took;
                done++;
                if (results is not null)
                {
                    state.WarmUps++;
                }
            }
        }
    }
}
