using Lens.Core;

namespace Lens.Measurement;

/// <summary>Settings of <see cref="ProfileRunner"/>.</summary>
public sealed record ProfileRunOptions
{
    /// <summary>Untimed requests per bucket before timing starts (first calls compile or load graphs); 0 skips warm-up.</summary>
    public int WarmupsPerBucket { get; init; } = 1;

    /// <summary>Runs the whole plan this many times, round after round (on top of the plan's own repeats).</summary>
    public int RepeatMultiplier { get; init; } = 1;

    /// <summary>
    /// Tries of each row (warm-ups included) while the backend fails transiently: the run's one retry budget
    /// (<see cref="MeasurementRetryPolicy"/>, which says what a row may cost). Default: one attempt, for a backend that retries on its
    /// own; give the retries here and build the backend without (the CLI's <c>--retries</c> does), never both.
    /// </summary>
    public MeasurementRetryPolicy Retry { get; init; } = MeasurementRetryPolicy.Once;

    /// <summary>Told before each retry's wait; called on the runner's thread.</summary>
    public Action<MeasurementRetry>? OnRetry { get; init; }

    /// <summary>
    /// Stop with a <see cref="ProfileRunException"/> after this many failed rows in a row (each after its retries, <see cref="Retry"/>);
    /// null records every failure and goes on to the end.
    /// </summary>
    public int? StopAfterConsecutiveFailures { get; init; } = 3;

    /// <summary>Flush each appended line through to the disk, not only to the operating system (survives a power loss).</summary>
    public bool FlushToDisk { get; init; } = true;

    /// <summary>Told before each request and once at the end; called on the runner's thread.</summary>
    public IProgress<MeasurementProgress>? Progress { get; init; }

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Retry);
        Retry.Validate();
        if (WarmupsPerBucket is < 0 or > 100)
        {
            throw new ArgumentException($"warm-ups per bucket must be in 0..100; got {WarmupsPerBucket}");
        }

        if (RepeatMultiplier is < 1 or > PlanOptions.MaxRepeats)
        {
            throw new ArgumentException($"repeat multiplier must be in 1..{PlanOptions.MaxRepeats}; got {RepeatMultiplier}");
        }

        if (StopAfterConsecutiveFailures is < 1)
        {
            throw new ArgumentException($"consecutive failures before stopping must be at least 1 (or null: never stop); got {StopAfterConsecutiveFailures}");
        }
    }
}

/// <summary>Which part of a run a progress report belongs to.</summary>
public enum ProfilePhase
{
    WarmUp,
    Measure,
    Finished,
}

/// <summary>
/// Where a run stands. <paramref name="Done"/> counts plan rows dealt with (measured before or now, or failed) of
/// <paramref name="Total"/>; during warm-up it counts warm-up requests of <paramref name="Total"/> warm-ups.
/// </summary>
/// <param name="Row">The row about to run; null in the final report.</param>
/// <param name="Eta">Estimated time left, from the mean device time of this run's requests so far; null before the first.</param>
public sealed record MeasurementProgress(ProfilePhase Phase, int Done, int Total, PlanRow? Row, TimeSpan Elapsed, TimeSpan? Eta);
