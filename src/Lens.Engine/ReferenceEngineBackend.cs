using System.Diagnostics;
using Lens.Core;
using Lens.Measurement;

namespace Lens.Engine;

/// <summary>
/// Times in-process requests against a <see cref="ReferenceEngine"/> (architecture.md, layer 2): E2E from the call to the last
/// token and TTFT at the first token, on the monotonic clock (<see cref="Stopwatch"/>), with the gaps between tokens. The prompt is
/// the engine's deterministic synthetic prompt of the requested length. The engine is not disposed here.
/// </summary>
public sealed class ReferenceEngineBackend(ReferenceEngine engine) : IMeasurementBackend
{
    private readonly ReferenceEngine _engine = engine ?? throw new ArgumentNullException(nameof(engine));

    public string Describe => $"reference engine '{_engine.Profile.Name}' in-process ({_engine.Buckets})";

    public async Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default)
    {
        if (_engine.CheckRequest(inputLength, outputLength) is { } reason)
        {
            throw new MeasurementFailedException(reason, isTransient: false, new RequestOutOfRangeException(reason));
        }

        var clock = new TokenClock(outputLength);
        GenerationResult result;
        try
        {
            clock.Start = Stopwatch.GetTimestamp();
            result = await _engine.GenerateAsync(inputLength, outputLength, clock.OnToken, cancellationToken);
        }
        catch (ObjectDisposedException ex)
        {
            throw new MeasurementFailedException($"the reference engine '{_engine.Profile.Name}' is disposed", isTransient: false, ex);
        }

        var end = Stopwatch.GetTimestamp();
        if (result.OutputLength != outputLength || clock.Count != outputLength)
        {
            throw new MeasurementFailedException(
                $"the reference engine produced {clock.Count} tokens, {outputLength} were asked", isTransient: false);
        }

        return new TimedRequest(inputLength, outputLength, Stopwatch.GetElapsedTime(clock.Start, end).TotalMilliseconds,
            Stopwatch.GetElapsedTime(clock.Start, clock.First).TotalMilliseconds, clock.Gaps);
    }

    /// <summary>Timestamps of the streamed tokens; one per request, so the engine's token callback allocates nothing.</summary>
    private sealed class TokenClock
    {
        private readonly double[] _gaps;
        private long _last;

        public TokenClock(int outputLength)
        {
            _gaps = new double[Math.Max(0, outputLength - 1)];
            OnToken = Tick;
        }

        public Func<int, ValueTask> OnToken { get; }

        public long Start { get; set; }

        public long First { get; private set; }

        public int Count { get; private set; }

        public IReadOnlyList<double> Gaps => _gaps;

        private ValueTask Tick(int token)
        {
            var now = Stopwatch.GetTimestamp();
            if (Count == 0)
            {
                First = now;
            }
            else if (Count - 1 < _gaps.Length)
            {
                _gaps[Count - 1] = Stopwatch.GetElapsedTime(_last, now).TotalMilliseconds;
            }

            _last = now;
            Count++;
            return ValueTask.CompletedTask;
        }
    }
}
