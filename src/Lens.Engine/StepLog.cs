namespace Lens.Engine;

/// <summary>The newest decode steps of an engine (<see cref="ReferenceEngine.StepsSince"/>), in a ring of fixed size.</summary>
internal sealed class StepLog
{
    /// <summary>Steps kept.</summary>
    public const int Capacity = 8192;

    private readonly object _lock = new();
    private readonly BatchStepTrace[] _steps = new BatchStepTrace[Capacity];
    private long _end; // one past the highest index recorded

    /// <summary>Records a step under its <see cref="BatchStepTrace.Index"/>.</summary>
    public void Record(in BatchStepTrace step)
    {
        lock (_lock)
        {
            _steps[step.Index % Capacity] = step;
            _end = Math.Max(_end, step.Index + 1);
        }
    }

    /// <summary>The steps from index <paramref name="index"/> on, oldest first; only the newest <see cref="Capacity"/> are kept.</summary>
    public IReadOnlyList<BatchStepTrace> Since(long index)
    {
        lock (_lock)
        {
            var start = Math.Max(Math.Max(0, index), _end - Capacity);
            var steps = new BatchStepTrace[Math.Max(0, _end - start)];
            for (var i = 0; i < steps.Length; i++)
            {
                steps[i] = _steps[(start + i) % Capacity];
            }

            return steps;
        }
    }
}
