namespace Lens.Core;

/// <summary>An estimate of a latency at one prompt length, with its standard error (0 when unknown).</summary>
public readonly record struct LengthEstimate(int InputLength, double ValueMs, double StandardError);

/// <summary>
/// The fit of one bucket from its own measurements alone, so that a bucket can be re-profiled without touching the others.
/// A decode bucket yields its step cost <c>S[d]</c> (the slope of <c>E2E = c + (O - 1) * S[d]</c>); any bucket may also
/// yield estimates of <c>A[pre(I)]</c> (intercepts whose steps all lie in the bucket, or prefill-only requests) and of TTFT.
/// <see cref="DeploymentModel.Compose"/> combines the fits of every bucket into a model.
/// </summary>
/// <param name="Bucket">The bucket.</param>
/// <param name="StepMs">Decode step cost <c>S[d]</c> in ms; null for prefill buckets or when the data cannot give a slope.</param>
/// <param name="StepStandardError">Standard error of <see cref="StepMs"/> (0 when the data give none).</param>
/// <param name="PrefillEstimates">Estimates of <c>A[pre(I)]</c> this bucket's data provide.</param>
/// <param name="TtftEstimates">Measured TTFT (statistic of the repeats) per prompt length, where the backend streamed.</param>
/// <param name="Measurements">Raw measurements used.</param>
/// <param name="Points">Distinct (I, O) points after reducing repeats.</param>
/// <param name="RelativeNoise">Pooled relative standard deviation of repeats of one point (0 with single repeats).</param>
/// <param name="Warning">Why the fit is incomplete, when it is, or what was held (a step cost below zero held at 0).</param>
/// <param name="Excess">The repeats' relative excess over their points' statistic, for the model's interval calibration.</param>
public sealed record BucketFit(
    BucketId Bucket,
    double? StepMs,
    double StepStandardError,
    IReadOnlyList<LengthEstimate> PrefillEstimates,
    IReadOnlyList<LengthEstimate> TtftEstimates,
    int Measurements,
    int Points,
    double RelativeNoise,
    string? Warning = null,
    RepeatExcess? Excess = null)
{
    /// <summary>Whether the fit gives what its kind must give: a step cost for decode buckets, an A estimate for prefill ones.</summary>
    public bool IsComplete => Bucket.Kind == BucketKind.Decode ? StepMs is not null : PrefillEstimates.Count > 0;
}
