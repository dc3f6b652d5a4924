using Lens.Abstractions;
using Lens.WebConsole.Charts;
using Lens.Core;

namespace Lens.WebConsole;

/// <summary>The deployment page's logic apart from its markup: which output length to draw first, and the two charts.</summary>
public static class DeploymentPageModel
{
    public sealed record ChartSet(string E2eSvg, string TtftSvg, int E2eMeasured);

    /// <summary>The most common output length above 1 among the measurements (so measured points show on the E2E chart), else 8.</summary>
    public static int DefaultOutput(IEnumerable<MeasurementRecord> measurements, BucketSet buckets)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        var common = measurements.Where(m => m.OutputLength > 1).GroupBy(m => m.OutputLength)
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Select(g => g.Key).FirstOrDefault();
        return Math.Clamp(common > 0 ? common : 8, 1, buckets.MaxSequence - 1);
    }

    public static ChartSet Charts(DeploymentModel model, IReadOnlyList<MeasurementRecord> measurements, int outputLength)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(measurements);
        var e2e = LatencyCurves.E2e(model, outputLength);
        var e2eMeasured = measurements.Where(m => m.OutputLength == outputLength).Select(m => new CurvePoint(m.InputLength, m.E2eMs)).ToArray();
        var maxE2e = e2e.Length == 0 ? 1 : (int)e2e[^1].X;
        var e2eSvg = SvgChart.StepCurve("chart-e2e", $"Predicted E2E latency for output length {outputLength} across input length", "input length I (tokens)",
            "E2E (ms)", e2e, e2eMeasured, LatencyCurves.Edges(model.Buckets, maxE2e, outputLength));

        var ttft = LatencyCurves.Ttft(model);
        var ttftMeasured = measurements.Where(m => m.TtftMs is not null).Select(m => new CurvePoint(m.InputLength, m.TtftMs!.Value)).ToArray();
        var ttftSvg = SvgChart.StepCurve("chart-ttft", "Predicted TTFT across input length", "input length I (tokens)", "TTFT (ms)", ttft,
            ttftMeasured, LatencyCurves.Edges(model.Buckets, ttft.Length == 0 ? 1 : (int)ttft[^1].X));
        return new ChartSet(e2eSvg, ttftSvg, e2eMeasured.Length);
    }
}
