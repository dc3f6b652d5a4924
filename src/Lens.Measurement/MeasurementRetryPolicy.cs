namespace Lens.Measurement;

/// <summary>
/// The retry budget of profiling, the one place it is stated: <see cref="MeasurementLoop"/> tries a plan row (one request, or one group
/// of <c>b</c> identical requests released together) at most <see cref="MaxAttempts"/> times while the backend fails transiently
/// (<see cref="MeasurementFailedException.IsTransient"/>), and nothing under it retries again: the loop refuses a backend that retries
/// on its own (<see cref="IMeasurementBackend.RetriesPerCall"/> above 0, e.g. <see cref="OpenAiCompletionsOptions.MaxRetries"/>).
/// <para>
/// So against an OpenAI-compatible server one row costs at most <see cref="MaxAttempts"/> completions requests (<c>MaxAttempts x b</c>
/// for a group: a group's attempt sends its <c>b</c> requests; the first failure cancels those not sent yet), plus <c>GET /models</c>
/// until it has answered once when the model is not named (each attempt asks it, up to one answer per backend). A server that always
/// fails transiently sees exactly <see cref="MaxAttempts"/> requests for a single-request row. The CLI's <c>--retries N</c> is
/// <c>N + 1</c> attempts; the service's <c>Lens:Grains:MaxAttempts</c> is this value itself.
/// </para>
/// After the <c>n</c>-th failed attempt the loop waits <see cref="BackoffAfter"/>(n) = min(<see cref="InitialBackoff"/> x 2^(n-1),
/// <see cref="MaxBackoff"/>); only the successful attempt is timed (the waits count in a run's device time, not in a measurement).
/// </summary>
public sealed record MeasurementRetryPolicy
{
    /// <summary>The most attempts <see cref="MaxAttempts"/> may be set to.</summary>
    public const int MaxAttemptsLimit = 101;

    /// <summary>Tries of one plan row, the first included (1: no retry). Default 4: three retries.</summary>
    public int MaxAttempts { get; init; } = 4;

    /// <summary>Wait after the first failed attempt; it doubles after each further one, up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Clock of the waits between attempts (not of the measurements); tests pass a fake one.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>One attempt, no retry.</summary>
    public static MeasurementRetryPolicy Once { get; } = new() { MaxAttempts = 1 };

    /// <summary>The policy of <paramref name="retries"/> retries after the first attempt (the CLI's <c>--retries</c>), default waits.</summary>
    public static MeasurementRetryPolicy WithRetries(int retries) => new() { MaxAttempts = retries + 1 };

    /// <summary>The wait after failed attempt <paramref name="failedAttempt"/> (1-based): min(initial x 2^(n-1), max).</summary>
    public TimeSpan BackoffAfter(int failedAttempt)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(failedAttempt, 1);
        var delay = InitialBackoff;
        for (var n = 1; n < failedAttempt && delay > TimeSpan.Zero && delay < MaxBackoff; n++)
        {
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxBackoff.Ticks));
        }

        return delay < MaxBackoff ? delay : MaxBackoff;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the setting that is out of range.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(TimeProvider);
        if (MaxAttempts is < 1 or > MaxAttemptsLimit)
        {
            throw new ArgumentException($"attempts per measurement must be in 1..{MaxAttemptsLimit} (retries 0..{MaxAttemptsLimit - 1}); got {MaxAttempts}");
        }

        if (InitialBackoff < TimeSpan.Zero || MaxBackoff < InitialBackoff)
        {
            throw new ArgumentException($"retry waits must satisfy 0 <= initial <= max; got initial {InitialBackoff} and max {MaxBackoff}");
        }
    }
}
