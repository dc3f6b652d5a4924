using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Lens.Grains;

/// <summary>The project's one <see cref="Meter"/> and one <see cref="ActivitySource"/>, both named <c>Lens</c> (style.md).</summary>
public static class LensTelemetry
{
    public const string Name = "Lens";

    public static readonly ActivitySource ActivitySource = new(Name);

    public static readonly Meter Meter = new(Name);

    internal static readonly Counter<long> Predictions = Meter.CreateCounter<long>("lens.predictions", "{request}", "Requests predicted");

    internal static readonly Counter<long> Measurements = Meter.CreateCounter<long>("lens.profile.measurements", "{request}",
        "Profiling measurements stored");

    internal static readonly Counter<long> MeasurementFailures = Meter.CreateCounter<long>("lens.profile.failures", "{request}",
        "Profiling measurements that failed (transient faults retried included)");
}
