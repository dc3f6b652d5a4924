using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Lens.Grains;

/// <summary>
/// The project's one <see cref="Meter"/> and one <see cref="ActivitySource"/>, both named <c>Lens</c> (style.md). Instrument names
/// follow OpenTelemetry's conventions (lowercase, dotted, UCUM units; Prometheus shows <c>lens.prediction.duration</c> as
/// <c>lens_prediction_duration_seconds</c>). Tags are bounded: <c>lens.deployment</c> (<c>tenant/device/deployment</c>) and
/// <c>lens.bucket</c> (e.g. <c>decode-256</c>) are finite per server, and the exporter's cardinality limit caps them further.
/// </summary>
public static class LensTelemetry
{
    public const string Name = "Lens";

    /// <summary>Tag: the deployment, <c>tenant/device/deployment</c>.</summary>
    public const string DeploymentTag = "lens.deployment";

    /// <summary>Tag: the bucket, e.g. <c>decode-256</c>.</summary>
    public const string BucketTag = "lens.bucket";

    /// <summary>
    /// Tag: why a measurement failed (<c>transient</c>: retried; <c>fatal</c>: ended the run), or which budget refused a heavy call
    /// (<c>tenant</c>, <c>silo</c>).
    /// </summary>
    public const string ReasonTag = "lens.reason";

    /// <summary>Tag: what started a single-bucket re-profile (<see cref="DriftSource"/> or <see cref="TrafficSource"/>).</summary>
    public const string SourceTag = "lens.source";

    /// <summary><see cref="SourceTag"/> of a re-profile started by sustained drift of single-request telemetry.</summary>
    public const string DriftSource = "drift";

    /// <summary><see cref="SourceTag"/> of a re-profile started by a cell the live-traffic monitor flagged.</summary>
    public const string TrafficSource = "traffic";

    public static readonly ActivitySource ActivitySource = new(Name);

    public static readonly Meter Meter = new(Name);

    internal static readonly Counter<long> Predictions = Meter.CreateCounter<long>("lens.predictions", "{request}", "Requests predicted");

    internal static readonly Histogram<double> PredictionDuration = Meter.CreateHistogram("lens.prediction.duration", "s",
        "Time a predictor took to answer one predict call (single or batch), model look-up included",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1] });

    internal static readonly Counter<long> ModelSubscriptions = Meter.CreateCounter<long>("lens.predictor.model_fetches", "{call}",
        "Times a silo's model cache asked a device grain for a deployment's model version (first use, a pushed change, a lease renewal); " +
        "predictions served from the cache make none");

    internal static readonly Counter<long> Measurements = Meter.CreateCounter<long>("lens.profile.measurements", "{request}",
        "Profiling measurements stored");

    internal static readonly Counter<double> DeviceTime = Meter.CreateCounter<double>("lens.profile.device_time", "s",
        "Device time spent in stored profiling measurements (their E2E latencies)");

    internal static readonly Counter<long> MeasurementFailures = Meter.CreateCounter<long>("lens.profile.failures", "{request}",
        "Profiling measurements that failed, by reason (transient: retried; fatal: ended the run)");

    internal static readonly Counter<long> Observations = Meter.CreateCounter<long>("lens.telemetry.observations", "{request}",
        "Observed production requests compared with the model");

    internal static readonly Histogram<double> ObservedError = Meter.CreateHistogram("lens.telemetry.error", "%",
        "Absolute percentage error of the predicted against the observed E2E, per observation, tagged with the bucket that carries " +
        "the largest share of its predicted time",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 100] });

    internal static readonly Counter<long> DriftEvents = Meter.CreateCounter<long>("lens.drift.events", "{analysis}",
        "Analyses that flagged a bucket as drifting");

    internal static readonly Counter<long> Reprofiles = Meter.CreateCounter<long>("lens.drift.reprofiles", "{run}",
        "Single-bucket re-profiles started because a bucket's drift was sustained (source drift) or live traffic flagged a cost cell " +
        "(source traffic), by the bucket or cell that asked for it");

    internal static readonly Counter<long> HeavyRefusals = Meter.CreateCounter<long>("lens.heavy.refusals", "{call}",
        "Heavy calls (simulate, advise, what-if) refused with 429 because the tenant's or the silo's heavy-call budget was spent, " +
        "by reason (tenant, silo)");

    /// <summary>OTLP spans received (HTTP and gRPC), by tenant-free reason-less count: every span of every accepted export body.</summary>
    public static readonly Counter<long> SpansReceived = Meter.CreateCounter<long>("lens.otlp.spans", "{span}",
        "OTLP spans received in export bodies that parsed (LLM requests or not)");

    /// <summary>OTLP LLM request spans refused, by reason (<c>unrouted</c>, <c>invalid</c>, <c>unknown</c>: no such deployment of the tenant).</summary>
    public static readonly Counter<long> SpansRejected = Meter.CreateCounter<long>("lens.otlp.rejected", "{span}",
        "OTLP LLM request spans refused (reported to the exporter as rejected), by reason");

    internal static readonly Counter<long> TrafficAnalyses = Meter.CreateCounter<long>("lens.traffic.analyses", "{window}",
        "Windows of live traffic analysed under batching");

    internal static readonly Counter<long> TrafficFlagged = Meter.CreateCounter<long>("lens.traffic.flagged", "{cell}",
        "Cells flagged by a live-traffic analysis (out of band in enough windows running), by cell");

    internal static KeyValuePair<string, object?> Deployment(string tenant, string device, string deployment) =>
        new(DeploymentTag, $"{tenant}/{device}/{deployment}");

    internal static KeyValuePair<string, object?> Bucket(string bucket) => new(BucketTag, bucket);

    internal static KeyValuePair<string, object?> Source(string source) => new(SourceTag, source);
}
