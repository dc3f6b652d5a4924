namespace Lens.Abstractions;

/// <summary>
/// One bucket's standing against observed latencies in the latest analysis of its deployment's window (Core's <c>BucketHealth</c>),
/// and how many analyses in a row have found it drifting. Cleared whenever the bucket's fitted data change (a re-profile).
/// </summary>
/// <param name="Observations">Observations in the window that touched the bucket.</param>
/// <param name="MeanApe">Share-weighted mean absolute percentage error of those observations' E2E (percent); null when none.</param>
/// <param name="Shift">Estimated relative change of the bucket's cost (0.3 = 30% slower than its fit).</param>
/// <param name="Band">Shifts (beyond the deployment's common shift) inside this band are noise.</param>
/// <param name="ConsecutiveDrift">Analyses in a row that found the bucket drifting (0 after any analysis that did not).</param>
/// <param name="ModelVersion">The bucket's own version the analysis compared against.</param>
[GenerateSerializer, Immutable, Alias("lens.BucketDrift.v1")]
public sealed record BucketDrift(
    [property: Id(0)] int Observations,
    [property: Id(1)] double? MeanApe,
    [property: Id(2)] double Shift,
    [property: Id(3)] double ShiftStandardError,
    [property: Id(4)] double Band,
    [property: Id(5)] bool Drifting,
    [property: Id(6)] int ConsecutiveDrift,
    [property: Id(7)] DateTimeOffset AnalyzedAt,
    [property: Id(8)] long ModelVersion);

/// <summary>What the deployment monitor made of a telemetry batch: which buckets drift now, and which (at most one) to re-profile.</summary>
/// <param name="Analyzed">Whether the window was analysed (false while the deployment has no usable fit).</param>
/// <param name="Drifting">Buckets flagged drifting by this analysis.</param>
/// <param name="Sustained">Buckets drifting in at least the required number of consecutive analyses, most shifted first.</param>
[GenerateSerializer, Immutable, Alias("lens.MonitorVerdict.v1")]
public sealed record MonitorVerdict(
    [property: Id(0)] bool Analyzed,
    [property: Id(1)] string[] Drifting,
    [property: Id(2)] string[] Sustained);

/// <summary>The monitor's sliding window of observations (for refinement), with a version that grows on every change.</summary>
[GenerateSerializer, Immutable, Alias("lens.ObservationWindow.v1")]
public sealed record ObservationWindow([property: Id(0)] long Version, [property: Id(1)] MeasurementInput[] Observations);

/// <summary>The latest analysis of a deployment's window, as its monitor holds it.</summary>
/// <param name="CommonShift">What the whole deployment runs slower (or faster) than its profile: shared by every bucket, so no re-profile of one bucket repairs it.</param>
[GenerateSerializer, Immutable, Alias("lens.MonitorStatus.v1")]
public sealed record MonitorStatus(
    [property: Id(0)] int WindowObservations,
    [property: Id(1)] long Analyses,
    [property: Id(2)] double CommonShift,
    [property: Id(3)] DateTimeOffset? AnalyzedAt);

/// <summary>One bucket's health as <c>GET .../health</c> shows it: its latest drift analysis with its fit's freshness.</summary>
[GenerateSerializer, Immutable, Alias("lens.BucketHealthView.v1")]
public sealed record BucketHealthView(
    [property: Id(0)] string Bucket,
    [property: Id(1)] int Observations,
    [property: Id(2)] double? MeanApe,
    [property: Id(3)] double? Shift,
    [property: Id(4)] double? Band,
    [property: Id(5)] bool Drifting,
    [property: Id(6)] int ConsecutiveDrift,
    [property: Id(7)] bool Stale,
    [property: Id(8)] DateTimeOffset? LastProfiled,
    [property: Id(9)] long Version);

/// <summary>
/// The health of a deployment against observed latencies (method.md, "Beyond the paper", 3). A bucket is re-profiled alone once it
/// is flagged drifting in <see cref="ConsecutiveRequired"/> consecutive analyses (see <c>DeploymentMonitorGrain</c> for the rule).
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.DeploymentHealth.v1")]
public sealed record DeploymentHealth(
    [property: Id(0)] string DeploymentId,
    [property: Id(1)] long ModelVersion,
    [property: Id(2)] int WindowObservations,
    [property: Id(3)] long Analyses,
    [property: Id(4)] double CommonShift,
    [property: Id(5)] DateTimeOffset? AnalyzedAt,
    [property: Id(6)] int ConsecutiveRequired,
    [property: Id(7)] bool AutoReprofile,
    [property: Id(8)] ProfileProgress Profile,
    [property: Id(9)] BucketHealthView[] Buckets);

/// <summary>
/// One drift analysis in a deployment's health history (Core's <c>HealthSample</c>): arrays aligned with
/// <see cref="DeploymentHealthHistory.Buckets"/>; MAPE and shift are null for a bucket no observation touched. <see cref="Source"/> is
/// <c>traffic</c> for a window of live traffic (cells' shifts, consecutive windows out of band, flagged ones as stale), null for
/// single-request telemetry. <see cref="Reprofiling"/> names the flagged cell whose single-cell re-profile this window started
/// (<c>Lens:Grains:ReprofileFlaggedCells</c>); null when none was.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.HealthHistoryEntry.v1")]
public sealed record HealthHistoryEntry(
    [property: Id(0)] DateTimeOffset At,
    [property: Id(1)] double CommonShift,
    [property: Id(2)] int Drifting,
    [property: Id(3)] int[] Observations,
    [property: Id(4)] double?[] MeanApe,
    [property: Id(5)] double?[] Shift,
    [property: Id(6)] double[] Band,
    [property: Id(7)] int[] ConsecutiveDrift,
    [property: Id(8)] bool[] Stale,
    [property: Id(9)] string? Source = null,
    [property: Id(10)] string? Reprofiling = null);

/// <summary>
/// <c>GET .../health/history</c>: the deployment's drift analyses, oldest first, at most <see cref="Capacity"/> of them kept (the
/// configured length, fewer for a deployment with very many buckets so that the stored history stays bounded).
/// </summary>
/// <param name="Buckets">The deployment's buckets, prefill first: the order of every entry's arrays.</param>
[GenerateSerializer, Immutable, Alias("lens.DeploymentHealthHistory.v1")]
public sealed record DeploymentHealthHistory(
    [property: Id(0)] string DeploymentId,
    [property: Id(1)] int Capacity,
    [property: Id(2)] int ConsecutiveRequired,
    [property: Id(3)] string[] Buckets,
    [property: Id(4)] HealthHistoryEntry[] Entries)
{
    /// <summary>Largest <c>last</c> a history request may ask for.</summary>
    public const int MaxLast = 10_000;
}
