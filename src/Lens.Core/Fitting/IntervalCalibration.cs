using System.Runtime.InteropServices;
using System.Text.Json.Serialization;
using MathNet.Numerics.Distributions;

namespace Lens.Core;

/// <summary>
/// One bucket's repeats, as relative excess over their point's statistic (method.md, "Profiling": noise is one-sided), for
/// <see cref="IntervalCalibration"/> to pool across buckets. Only points with at least two repeats count.
/// </summary>
/// <param name="E2e">For every repeat <c>x_k</c> of an <c>(I, O)</c> point: <c>(x_k - v_-k) / v_-k</c>, where <c>v_-k</c> is the
/// statistic of the point's other repeats. Left out like this, a repeat is what a new request is to a profiled point: for the
/// <c>min</c> statistic every repeat but the fastest has its plain excess <c>(x - min) / min</c>, and the fastest the (negative)
/// amount it undercut the others, which an in-sample 0 would hide (with 3 repeats a new request is below their min 1 time in 4).</param>
/// <param name="E2eFloor">For every such point: <c>(x(1) - (x(2) - x(1)) - v) / v</c>, its fastest repeat less the gap to the next
/// fastest, relative to the statistic: how far below the statistic the fastest possible time may lie.</param>
/// <param name="Ttft">The same as <paramref name="E2e"/> for streamed TTFT, points by prompt length.</param>
/// <param name="TtftFloor">The same as <paramref name="E2eFloor"/> for streamed TTFT.</param>
public sealed record RepeatExcess(double[] E2e, double[] E2eFloor, double[] Ttft, double[] TtftFloor)
{
    public static RepeatExcess None { get; } = new([], [], [], []);

    /// <summary>The excess of <paramref name="measurements"/>' repeats over <paramref name="statistic"/>; O(n log n).</summary>
    public static RepeatExcess Of(IEnumerable<MeasuredRequest> measurements, RepeatStatistic statistic)
    {
        ArgumentNullException.ThrowIfNull(measurements);
        var list = measurements as IReadOnlyCollection<MeasuredRequest> ?? [.. measurements];
        List<double> e2e = [], e2eFloor = [], ttft = [], ttftFloor = [];
        foreach (var g in list.GroupBy(m => (m.InputLength, m.OutputLength)))
        {
            AddPoint([.. g.Select(m => m.E2eMs)], statistic, e2e, e2eFloor);
        }

        foreach (var g in list.Where(m => m.TtftMs is not null).GroupBy(m => m.InputLength))
        {
            AddPoint([.. g.Select(m => m.TtftMs!.Value)], statistic, ttft, ttftFloor);
        }

        return e2e.Count == 0 && ttft.Count == 0 ? None : new([.. e2e], [.. e2eFloor], [.. ttft], [.. ttftFloor]);
    }

    private static void AddPoint(double[] values, RepeatStatistic statistic, List<double> excess, List<double> floor)
    {
        if (values.Length < 2)
        {
            return;
        }

        var v = statistic.Reduce(values); // sorts values
        if (!(values[0] > 0) || double.IsInfinity(values[^1]))
        {
            return;
        }

        var sum = 0.0;
        foreach (var x in values)
        {
            sum += x;
        }

        for (var k = 0; k < values.Length; k++)
        {
            var others = ReduceWithout(values, k, statistic, sum);
            excess.Add((values[k] - others) / others);
        }

        floor.Add((values[0] - (values[1] - values[0]) - v) / v);
    }

    /// <summary>The statistic of <paramref name="sorted"/> without its element <paramref name="k"/>, in O(1).</summary>
    private static double ReduceWithout(double[] sorted, int k, RepeatStatistic statistic, double sum)
    {
        var n = sorted.Length - 1;
        double At(int j) => sorted[j < k ? j : j + 1];
        double Quantile(double q)
        {
            var pos = q * (n - 1);
            var lo = (int)Math.Floor(pos);
            var hi = Math.Min(lo + 1, n - 1);
            return At(lo) + ((pos - lo) * (At(hi) - At(lo)));
        }

        return statistic.Kind switch
        {
            StatisticKind.Min => At(0),
            StatisticKind.Median => Quantile(0.5),
            StatisticKind.Mean => (sum - sorted[k]) / n,
            _ => Quantile(statistic.Q),
        };
    }
}

/// <summary>
/// Quantiles of the relative excess of one latency (E2E or TTFT) over its point prediction, and what a prediction interval made
/// from them is. With point prediction <c>m</c> (the profile's statistic), fit standard error <c>se</c> and <c>z</c> of the level:
/// <code>
/// high = m + max(High * m, z * se)
/// low  = max(m - max(-Low * m, z * se),  m * (1 + Floor),  0)
/// </code>
/// The wider of the two, not their sum in quadrature: a left-out repeat's excess already holds the statistic's own sampling error,
/// which the fit's standard error (from the same repeats) counts again; on synthetic one-sided noise the quadrature sum covered 99%
/// at a stated 95%.
/// </summary>
/// <param name="Low">Excess quantile at <c>(1 - level) / 2</c>, at most 0.</param>
/// <param name="High">Excess quantile at <c>(1 + level) / 2</c>, at least 0.</param>
/// <param name="Floor">Quantile at <c>(1 - level) / 2</c> of the points' fastest-time estimates (<see cref="RepeatExcess.E2eFloor"/>),
/// in [-1, 0]: the low end never lies below <c>m * (1 + Floor)</c>, however large the fit's standard error (which one slow repeat
/// inflates).</param>
/// <param name="Repeats">Repeats the quantiles come from; 0 for a fallback from the relative noise.</param>
public sealed record ExcessQuantiles(double Low, double High, double Floor, int Repeats)
{
    /// <summary>The interval around <paramref name="value"/> with fit standard error <paramref name="standardError"/>.</summary>
    public (double Low, double High) Interval(double value, double standardError, double z)
    {
        var fit = z * standardError;
        var high = value + Math.Max(High * value, fit);
        var low = Math.Max(Math.Max(value - Math.Max(-Low * value, fit), value * (1 + Floor)), 0);
        return (low, Math.Max(high, low));
    }

    internal void Validate(string name)
    {
        if (!(Low is <= 0 and > -1) || !(High is >= 0 and < double.PositiveInfinity) || !(Floor is >= -1 and <= 0) || Repeats < 0)
        {
            throw new ArgumentException(
                $"calibration {name}: low {Low} must be in (-1, 0], high {High} at least 0 and finite, floor {Floor} in [-1, 0], repeats {Repeats} at least 0");
        }
    }

    /// <summary>The pooled quantiles of <paramref name="excess"/> and <paramref name="floor"/> at <paramref name="level"/>.</summary>
    internal static ExcessQuantiles Pool(List<double> excess, List<double> floor, double level)
    {
        excess.Sort();
        floor.Sort();
        var tail = (1 - level) / 2;
        var low = Math.Clamp(RepeatStatistic.QuantileOfSorted(CollectionsMarshal.AsSpan(excess), tail), -0.999, 0);
        var high = Math.Max(RepeatStatistic.QuantileOfSorted(CollectionsMarshal.AsSpan(excess), 1 - tail), 0);
        var lowest = Math.Clamp(RepeatStatistic.QuantileOfSorted(CollectionsMarshal.AsSpan(floor), tail), -1, 0);
        return new ExcessQuantiles(low, high, lowest, excess.Count);
    }

    /// <summary>
    /// Without repeats to calibrate from (a model file from before calibration, or one repeat per point): the relative repeat noise
    /// <paramref name="relativeNoise"/> as a normal spread, above the point only for the <c>min</c> statistic, and no floor but zero.
    /// </summary>
    internal static ExcessQuantiles Fallback(double relativeNoise, RepeatStatistic statistic, double z)
    {
        var spread = z * relativeNoise;
        return new ExcessQuantiles(statistic.Kind == StatisticKind.Min ? 0 : -Math.Min(spread, 0.999), spread, -1, 0);
    }
}

/// <summary>
/// How a model's prediction intervals are made (method.md, "Uncertainty"): at <see cref="Level"/> (two-sided, each end missing at
/// most <c>(1 - level) / 2</c>), from quantiles of the profile's own one-sided repeat excess (<see cref="ExcessQuantiles"/>) pooled
/// over every bucket, combined with each prediction's fit standard error. The point prediction is the profile's statistic.
/// </summary>
/// <param name="Level">Stated coverage of one request's latency, in (0, 1).</param>
/// <param name="E2e">Quantiles for end-to-end latency.</param>
/// <param name="Ttft">Quantiles for TTFT (the E2E ones where the backend did not stream: TTFT is then the prefill-only E2E).</param>
public sealed record IntervalCalibration(double Level, ExcessQuantiles E2e, ExcessQuantiles Ttft)
{
    public const double DefaultLevel = 0.95;

    /// <summary>The standard normal quantile of the level's upper end, applied to fit standard errors.</summary>
    [JsonIgnore]
    public double Z { get; } = Level is >= 0.5 and < 1 ? Normal.InvCDF(0, 1, (1 + Level) / 2) : double.NaN;

    /// <summary>
    /// Pools every bucket's <paramref name="excess"/> into quantiles at <paramref name="level"/>; a latency without repeats falls
    /// back to <see cref="ExcessQuantiles.Fallback"/> (TTFT to the E2E quantiles, when only E2E has repeats).
    /// </summary>
    public static IntervalCalibration Of(IEnumerable<RepeatExcess?> excess, double relativeNoise, RepeatStatistic statistic,
        double level = DefaultLevel)
    {
        ArgumentNullException.ThrowIfNull(excess);
        CheckLevel(level);
        List<double> e2e = [], e2eFloor = [], ttft = [], ttftFloor = [];
        foreach (var e in excess)
        {
            if (e is null)
            {
                continue;
            }

            e2e.AddRange(e.E2e);
            e2eFloor.AddRange(e.E2eFloor);
            ttft.AddRange(e.Ttft);
            ttftFloor.AddRange(e.TtftFloor);
        }

        var fallback = Fallback(relativeNoise, statistic, level);
        var e2eQ = e2e.Count > 0 ? ExcessQuantiles.Pool(e2e, e2eFloor, level) : fallback.E2e;
        return new IntervalCalibration(level, e2eQ, ttft.Count > 0 ? ExcessQuantiles.Pool(ttft, ttftFloor, level) : e2eQ);
    }

    /// <summary>The calibration of a model without repeats (see <see cref="ExcessQuantiles.Fallback"/>).</summary>
    public static IntervalCalibration Fallback(double relativeNoise, RepeatStatistic statistic, double level = DefaultLevel)
    {
        CheckLevel(level);
        var q = ExcessQuantiles.Fallback(relativeNoise, statistic, Normal.InvCDF(0, 1, (1 + level) / 2));
        return new IntervalCalibration(level, q, q);
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming what is out of range (a model file's calibration is input).</summary>
    public void Validate()
    {
        CheckLevel(Level);
        ArgumentNullException.ThrowIfNull(E2e, "calibration.e2e");
        ArgumentNullException.ThrowIfNull(Ttft, "calibration.ttft");
        E2e.Validate("e2e");
        Ttft.Validate("ttft");
    }

    private static void CheckLevel(double level)
    {
        if (!(level is >= 0.5 and < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(level), level, "interval level must be at least 0.5 and below 1 (e.g. 0.95)");
        }
    }
}
