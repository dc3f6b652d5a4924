using System.Diagnostics;

namespace Lens.Engine;

/// <summary>
/// Brings an engine to its steady speed before anything is timed (<see cref="ReferenceEngine.Warmup"/>). The JIT first runs
/// freshly called code unoptimised and recompiles hot methods in the background (tiered compilation), which makes the first
/// hundreds of milliseconds several times slower. So: short rounds (the shortest prefill bucket and a few decode steps in every
/// decode bucket, at the smallest batch bucket) repeat, with short pauses for the background compiler, until a round is no faster
/// than the best of the rounds before; then every prefill bucket runs once and every cell of the step table (batch by decode,
/// batch by block, or token by context bucket, as the policy has it) a few steps, so that each bucket's buffers have been touched. Warm-up runs in the pad slot: sequences in flight are not disturbed. Its steps are
/// counted and logged like any other.
/// </summary>
internal sealed class EngineWarmup(StepExecutor executor, KvCache cache, StepLog log)
{
    private const int StepsPerBucket = 3;

    /// <summary>Runs the stabilising rounds (at most <paramref name="maxRounds"/>) then the full round; returns the rounds run.</summary>
    public int Run(int maxRounds)
    {
        var best = double.MaxValue;
        var sinceBest = 0;
        var rounds = 0;
        var started = Stopwatch.GetTimestamp();
        while (rounds < maxRounds)
        {
            var t0 = Stopwatch.GetTimestamp();
            Round(Math.Min(1, executor.PrefillBuckets), rowCount: 1);
            var ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            rounds++;
            if (ms < best * 0.98)
            {
                best = Math.Min(best, ms);
                sinceBest = 0;
            }
            else if (++sinceBest >= 8 && Stopwatch.GetElapsedTime(started).TotalMilliseconds > 600)
            {
                break;
            }

            Thread.Sleep(rounds < 5 ? 100 : 10);
        }

        Round(executor.PrefillBuckets, executor.Cells.Rows);
        return rounds;
    }

    private void Round(int prefillCount, int rowCount)
    {
        var pad = cache.PadSlot;
        for (var i = 0; i < prefillCount; i++)
        {
            var p = executor.PrefillEdge(i);
            _ = executor.Prefill(pad, null, p, i);
        }

        var columns = executor.Cells.Columns;
        for (var row = 0; row < rowCount; row++)
        {
            for (var j = 0; j < columns; j++)
            {
                for (var n = 0; n < StepsPerBucket; n++)
                {
                    log.Record(executor.WarmupStep(row, j, n));
                }
            }
        }
    }
}
