namespace Lens.Core;

/// <summary>How many single measurements fell inside their prediction interval, and how many below and above it.</summary>
public readonly record struct Coverage(int Count, int Below, int Above)
{
    public int Inside => Count - Below - Above;

    /// <summary>Inside / Count; NaN without measurements.</summary>
    public double Fraction => Count == 0 ? double.NaN : (double)Inside / Count;

    /// <summary>
    /// Whether <see cref="Fraction"/> is within <paramref name="tolerance"/> of <paramref name="level"/> (both fractions), the bound
    /// included: compared in counts, so that 300 of 300 inside is within 0.05 of 0.95 although <c>1 - 0.95</c> exceeds 0.05 in
    /// binary floating point.
    /// </summary>
    public bool Within(double level, double tolerance) =>
        Count > 0 && Math.Abs(Inside - (level * Count)) <= (tolerance * Count) + 1e-9;

    internal Coverage Add(double measured, double low, double high) =>
        new(Count + 1, Below + (measured < low ? 1 : 0), Above + (measured > high ? 1 : 0));
}

/// <summary>
/// The coverage of a model's intervals on single measurements (each repeat on its own, not their statistic: an interval is about
/// one request), beside the <see cref="Level"/> the model states. TTFT counts measurements that streamed one, or the E2E of
/// <c>O = 1</c> requests.
/// </summary>
public sealed record IntervalCoverage(double Level, Coverage E2e, Coverage Ttft)
{
    /// <summary>Scores <paramref name="measurements"/>; requests outside the model's range or touching an unfitted bucket are skipped.</summary>
    public static IntervalCoverage Of(DeploymentModel model, IEnumerable<MeasuredRequest> measurements)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(measurements);
        Coverage e2e = default, ttft = default;
        foreach (var m in measurements)
        {
            Prediction p;
            try
            {
                p = model.Predict(m.InputLength, m.OutputLength);
            }
            catch (Exception ex) when (ex is RequestOutOfRangeException or UnfittedBucketException)
            {
                continue;
            }

            e2e = e2e.Add(m.E2eMs, p.E2eLowMs, p.E2eHighMs);
            if ((m.TtftMs ?? (m.OutputLength == 1 ? m.E2eMs : null)) is { } t)
            {
                ttft = ttft.Add(t, p.TtftLowMs, p.TtftHighMs);
            }
        }

        return new IntervalCoverage(model.Calibration.Level, e2e, ttft);
    }
}
