using Orleans.Concurrency;

namespace Lens.Abstractions;

/// <summary>
/// LLM requests a production server served, read from its OpenTelemetry spans (Core's <c>ObservedRequest</c>, column by column so
/// that a batch of thousands crosses the grain boundary compactly). Times in ms; <see cref="QueueMs"/> is NaN where the span had no
/// queue time, <see cref="Replicas"/> null where no span named a replica.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.ObservedBatch.v1")]
public sealed record ObservedBatch(
    [property: Id(0)] double[] ArrivalMs,
    [property: Id(1)] int[] InputLengths,
    [property: Id(2)] int[] OutputLengths,
    [property: Id(3)] double[] TtftMs,
    [property: Id(4)] double[] E2eMs,
    [property: Id(5)] double[] QueueMs,
    [property: Id(6)] string?[]? Replicas)
{
    public int Count => ArrivalMs.Length;
}

/// <summary>One cost cell in the latest analysed window of live traffic (Core's <c>CellHealth</c> with its streak).</summary>
/// <param name="Cell">The prefill bucket, or the decode bucket with its batch bucket (<c>decode-512-b4</c>).</param>
/// <param name="ConsecutiveWindows">Windows running that count against the cell (out of band against its profile, or leaning the same way against its baseline).</param>
/// <param name="Flagged">Out of band in enough windows running: the cell is marked stale.</param>
/// <param name="EstimatedMs">Its cost estimated from the traffic, when the window ran it enough; else null.</param>
/// <param name="Reference">
/// What judged it: <c>profile</c> (its profile's band, while its traffic baseline is learned) or <c>traffic</c> (that baseline).
/// <see cref="Band"/> and <see cref="OutOfBand"/> are against it.
/// </param>
/// <param name="BaselineWindows">Windows of its traffic baseline learned so far.</param>
/// <param name="Baseline">Its own shift (beyond the common shift) in its baseline windows; null while learning.</param>
/// <param name="Deviation">Own shift less the baseline, pooled over <see cref="ConsecutiveWindows"/> windows; null when none counts.</param>
/// <param name="DeviationStandardError">Standard error of <see cref="Deviation"/>.</param>
[GenerateSerializer, Immutable, Alias("lens.TrafficCell.v1")]
public sealed record TrafficCell(
    [property: Id(0)] string Cell,
    [property: Id(1)] int Observations,
    [property: Id(2)] long Steps,
    [property: Id(3)] double Shift,
    [property: Id(4)] double ShiftStandardError,
    [property: Id(5)] double Band,
    [property: Id(6)] bool OutOfBand,
    [property: Id(7)] int ConsecutiveWindows,
    [property: Id(8)] bool Flagged,
    [property: Id(9)] double ProfiledMs,
    [property: Id(10)] double? EstimatedMs,
    [property: Id(11)] string? Reference = null,
    [property: Id(12)] int BaselineWindows = 0,
    [property: Id(13)] double? Baseline = null,
    [property: Id(14)] double? Deviation = null,
    [property: Id(15)] double? DeviationStandardError = null);

/// <summary>
/// One analysed window of live traffic (Core's <c>TrafficReport</c>); MAPEs are null when no request could be replayed. A window is
/// <c>Disturbed</c> when its common shift left the recent windows' (their median, <c>RecentCommonShift</c>): the machine itself moved
/// and no cell was judged in it.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.TrafficWindow.v1")]
public sealed record TrafficWindow(
    [property: Id(0)] DateTimeOffset AnalyzedAt,
    [property: Id(1)] long ModelVersion,
    [property: Id(2)] int Requests,
    [property: Id(3)] int Skipped,
    [property: Id(4)] double? TtftMape,
    [property: Id(5)] double? E2eMape,
    [property: Id(6)] double CommonShift,
    [property: Id(7)] double StartMs,
    [property: Id(8)] double EndMs,
    [property: Id(9)] TrafficCell[] Cells,
    [property: Id(10)] bool Disturbed = false,
    [property: Id(11)] double? RecentCommonShift = null);

/// <summary>
/// A deployment's live-traffic monitoring: requests received from its OTLP spans, the window held, the analyses made, and the latest
/// window's report (null before the first).
/// </summary>
/// <param name="WindowSize">Requests one analysis takes (<c>Lens:Grains:TrafficWindow</c>).</param>
/// <param name="ConsecutiveWindows">Windows running a cell must be out of band in to be flagged (<c>Lens:Grains:TrafficConsecutive</c>).</param>
/// <param name="BaselineWindows">Judged windows that form each cell's traffic baseline (<c>Lens:Grains:TrafficBaselineWindows</c>).</param>
/// <param name="Pending">Requests received since the last analysis (one is made when a window's worth arrived).</param>
/// <param name="LastError">Why the latest window could not be analysed (the model unfitted, ...); null when it was.</param>
/// <param name="Estimates">Costs re-estimated from traffic that the deployment's model now holds (null: none).</param>
/// <param name="LastReprofile">
/// The latest single-cell re-profile started for a flagged cell (<c>Lens:Grains:ReprofileFlaggedCells</c>): the cell, the bucket and
/// the run (<c>GET .../profile</c> follows it); null when none was (the setting is off, or no flagged cell's re-profile could start).
/// </param>
[GenerateSerializer, Immutable, Alias("lens.TrafficStatus.v1")]
public sealed record TrafficStatus(
    [property: Id(0)] string Deployment,
    [property: Id(1)] long Received,
    [property: Id(2)] int WindowSize,
    [property: Id(3)] int Pending,
    [property: Id(4)] long Analyses,
    [property: Id(5)] int ConsecutiveWindows,
    [property: Id(6)] string[] Flagged,
    [property: Id(7)] TrafficWindow? Latest,
    [property: Id(8)] string? LastError,
    [property: Id(9)] TrafficEstimateRecord[]? Estimates = null,
    [property: Id(10)] TrafficReprofile? LastReprofile = null,
    [property: Id(11)] int BaselineWindows = 0);

/// <summary>
/// A flagged cell re-profiled alone (<c>Lens:Grains:ReprofileFlaggedCells</c>): the cell, the bucket whose plan rows the run measures
/// (the cell itself, or for a prefill bucket the decode bucket whose pair measures it), the run (<c>GET .../profile</c> follows it)
/// and when it was started. When the run commits, the cell's traffic estimate is dropped and its stale mark cleared.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.TrafficReprofile.v1")]
public sealed record TrafficReprofile(
    [property: Id(0)] string Cell,
    [property: Id(1)] string Bucket,
    [property: Id(2)] string RunId,
    [property: Id(3)] DateTimeOffset StartedAt);

/// <summary>
/// A cell's cost re-estimated from live traffic and written into the deployment's model (Core's <c>TrafficEstimate</c>): the cost,
/// the profiled one it replaced, the steps of the cell the window ran, the window's arrivals (Unix ms) and when it was analysed.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.TrafficEstimate.v1")]
public sealed record TrafficEstimateRecord(
    [property: Id(0)] string Cell,
    [property: Id(1)] double CostMs,
    [property: Id(2)] double ProfiledMs,
    [property: Id(3)] long Steps,
    [property: Id(4)] double WindowStartMs,
    [property: Id(5)] double WindowEndMs,
    [property: Id(6)] DateTimeOffset EstimatedAt);

/// <summary>
/// The live traffic of one deployment (key <see cref="DeploymentKey"/>): requests read from OTLP spans go in, a window's worth is
/// analysed under the deployment's batching (Core's <c>TrafficAnalysis</c>), and a cell out of band in enough windows running is
/// flagged and marked stale. Calls the deployment and bucket grains, never called by them (no call cycle).
/// </summary>
[Alias("lens.ITrafficMonitorGrain")]
public interface ITrafficMonitorGrain : IGrainWithStringKey
{
    /// <summary>
    /// Adds requests of this deployment (the caller built the key from the authenticated tenant); a deployment that does not exist is
    /// a <see cref="LensErrorKind.NotFound"/> and nothing is kept. Analyses the window when a window's worth of new requests arrived.
    /// </summary>
    [Alias("Observe")]
    Task<TrafficStatus> ObserveAsync(ObservedBatch batch);

    [Alias("GetStatus"), ReadOnly]
    Task<TrafficStatus> GetStatusAsync();
}
