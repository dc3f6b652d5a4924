using System.Diagnostics;
using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// An executor that keeps a device clock: told, before an admission's step, the moment that step could have started (the
/// request's arrival), so an idle device starts it then and not when its loop thread happened to wake.
/// </summary>
internal interface IDeviceClock
{
    /// <summary>The next step could start at <paramref name="timestamp"/> (<see cref="Stopwatch"/> ticks) at the earliest.</summary>
    void Ready(long timestamp);
}

/// <summary>
/// The digital twin's executor (issue 18, "A digital twin of a profiled deployment"): instead of computing, each step sleeps its
/// fitted cost from the deployment model, a prefill <c>A[p]</c> (<see cref="DeploymentModel.PrefillMs"/>) and a decode step
/// <c>S[B, D]</c> (<see cref="DeploymentModel.StepMs"/>), and its tokens are synthetic.
/// <para>
/// Its clock runs on absolute deadlines: a step starts at the end of the previous one, or, after an idle spell, when it could start
/// (the admitted request's arrival, from <see cref="IDeviceClock.Ready"/>); it ends at its start plus its cost, whenever the thread
/// wakes. Timer slop only ever delays when a token is published, never the device's clock: a late step does not make the next one
/// shorter or push the ones after it. A prefill's first token is published at the fitted TTFT (at most <c>A</c>); the device is
/// busy until <c>A</c>, as in <see cref="ServingSimulation"/>. Every cost is multiplied by <c>slowdown</c> (1: the deployment's own
/// speed; above 1, the same queueing system in slower time, for costs below the timer's millisecond).
/// </para>
/// </summary>
internal sealed class SleepingExecutor(DeploymentModel model, EngineWork work, double slowdown) : IStepExecutor, IDeviceClock
{
    private readonly int[] _prefillEdges = [.. model.Buckets.Prefill];
    private readonly int[] _decodeEdges = [.. model.Buckets.Decode];
    private readonly BucketSet _buckets = model.Buckets;
    private long _deviceEnd = long.MinValue; // when the device's last step ends (Stopwatch ticks)
    private long _ready = long.MinValue;

    /// <summary>The synthetic vocabulary of the twin's tokens.</summary>
    public const int Vocab = 32_000;

    /// <summary>The earliest moment told since the last step: chunked prefill can join several requests before its next step, and
    /// the device could have started at the first one's arrival.</summary>
    public void Ready(long timestamp) => _ready = _ready == long.MinValue ? timestamp : Math.Min(_ready, timestamp);

    public PrefillOutcome Prefill(int slot, IReadOnlyList<int>? prompt, int inputLength, int prefillIndex)
    {
        var ready = _ready == long.MinValue ? Stopwatch.GetTimestamp() : _ready;
        _ready = long.MinValue;
        var start = TwinClock.StepStart(_deviceEnd, ready);
        _deviceEnd = start + TwinClock.Ticks(slowdown * model.PrefillMs(prefillIndex));
        TwinClock.SleepUntil(start + TwinClock.Ticks(slowdown * model.TtftMs(prefillIndex)));
        var p = _prefillEdges[prefillIndex];
        work.Prefill(p, 0);
        return new PrefillOutcome(Token(inputLength), p, 0);
    }

    public BatchStepTrace Decode(Span<DecodeRow> rows, int batch, int lengthBucket, long started)
    {
        // Sequences are in flight, so the device has been busy since its last step: this one starts when that one ended.
        var start = _deviceEnd == long.MinValue ? started : _deviceEnd;
        _deviceEnd = start + TwinClock.Ticks(slowdown * model.StepMs(_buckets.BatchIndex(batch), lengthBucket));
        TwinClock.SleepUntil(_deviceEnd);
        for (var r = 0; r < rows.Length; r++)
        {
            rows[r].Token = Token(rows[r].Position + 1);
        }

        var edge = _decodeEdges[lengthBucket];
        var index = work.DecodeStep(batch, rows.Length, edge, 0);
        return new BatchStepTrace(index, batch, rows.Length, new BucketId(BucketKind.Decode, edge, batch), edge, 0, 0,
            Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>
    /// A chunked-prefill mixed step sleeps its cell's cost <c>C[T, K]</c> (<see cref="DeploymentModel.StepMs"/> at the token bucket's
    /// row). It starts when the previous step ended or, after an idle spell, at the earliest arrival joined since
    /// (<see cref="IDeviceClock.Ready"/>). Every row gets a token; the scheduler keeps those of decoding rows and of a prompt's last chunk.
    /// </summary>
    public BatchStepTrace Mixed(Span<DecodeRow> rows, int tokenBucket, int contextBucket, long started)
    {
        var ready = _ready != long.MinValue ? _ready : _deviceEnd == long.MinValue ? started : _deviceEnd;
        _ready = long.MinValue;
        var start = TwinClock.StepStart(_deviceEnd, ready);
        var row = _buckets.BatchIndex(tokenBucket);
        _deviceEnd = start + TwinClock.Ticks(slowdown * model.StepMs(row, contextBucket));
        TwinClock.SleepUntil(_deviceEnd);
        for (var r = 0; r < rows.Length; r++)
        {
            rows[r].Token = Token(rows[r].Position + 1);
        }

        var edge = _decodeEdges[contextBucket];
        var index = work.DecodeStep(tokenBucket, rows.Length, edge, 0);
        return new BatchStepTrace(index, tokenBucket, rows.Length, new BucketId(BucketKind.Decode, edge), edge, 0, 0,
            Stopwatch.GetElapsedTime(started).TotalMilliseconds, EngineStepKind.Mixed, row, contextBucket);
    }

    /// <summary>A deterministic token for a position (the twin computes nothing).</summary>
    private static int Token(int position) => (int)((uint)(position * 2654435761u) % Vocab);
}

/// <summary>The twin's device clock: absolute deadlines on the <see cref="Stopwatch"/> timeline.</summary>
internal static class TwinClock
{
    /// <summary>
    /// When a step starts: when the previous step ends (<paramref name="deviceEnd"/>) or, if the device was idle before, when the
    /// step could start (<paramref name="ready"/>), whichever is later. Never the moment the thread woke: slop does not accumulate.
    /// </summary>
    public static long StepStart(long deviceEnd, long ready) => Math.Max(deviceEnd, ready);

    /// <summary>Milliseconds as <see cref="Stopwatch"/> ticks (a NaN or negative cost is refused when the twin is created).</summary>
    public static long Ticks(double ms) => (long)Math.Round(ms * Stopwatch.Frequency / 1000.0);

    /// <summary>
    /// Blocks until <paramref name="deadline"/>, to within a millisecond: sleeps whole milliseconds (what the OS sleeps) and returns
    /// once less than one is left, never spinning, so that many replicas of sub-millisecond steps cost little CPU. A token is then
    /// published up to a millisecond early or, after a late wake, late; the device's clock is the deadlines', so neither drifts.
    /// </summary>
    public static void SleepUntil(long deadline)
    {
        while ((deadline - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency is var ms && ms >= 1)
        {
            Thread.Sleep((int)Math.Min(ms, int.MaxValue));
        }
    }
}
