using System.Globalization;

namespace Lens.Core;

/// <summary>How the repeats of one planned point are reduced to one number.</summary>
public enum StatisticKind
{
    Min,
    Median,
    Mean,
    Quantile,
}

/// <summary>
/// The statistic that reduces the repeats of one (I, O) point (method.md, "Profiling"). Interference only ever slows a request,
/// so timing noise is one-sided and the minimum or a low quantile estimates the undisturbed cost better than the mean.
/// A profile states which one it used; evaluation must use the same.
/// </summary>
public readonly record struct RepeatStatistic(StatisticKind Kind, double Q = 0)
{
    public static RepeatStatistic Min => new(StatisticKind.Min);

    public static RepeatStatistic Median => new(StatisticKind.Median);

    public static RepeatStatistic Mean => new(StatisticKind.Mean);

    /// <summary>Reduces <paramref name="values"/> (sorted in place) to the statistic.</summary>
    public double Reduce(Span<double> values)
    {
        if (values.IsEmpty)
        {
            throw new ArgumentException("no values to reduce", nameof(values));
        }

        values.Sort();
        return Kind switch
        {
            StatisticKind.Min => values[0],
            StatisticKind.Median => QuantileOfSorted(values, 0.5),
            StatisticKind.Mean => Average(values),
            StatisticKind.Quantile => QuantileOfSorted(values, Q),
            _ => throw new InvalidOperationException($"unknown statistic {Kind}"),
        };
    }

    /// <summary>Text form: <c>min</c>, <c>median</c>, <c>mean</c> or <c>pNN</c> (e.g. <c>p10</c>).</summary>
    public override string ToString() => Kind switch
    {
        StatisticKind.Min => "min",
        StatisticKind.Median => "median",
        StatisticKind.Mean => "mean",
        _ => "p" + (Q * 100).ToString("0.##", CultureInfo.InvariantCulture),
    };

    public static RepeatStatistic Parse(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        switch (t)
        {
            case "min":
                return Min;
            case "median" or "p50":
                return Median;
            case "mean":
                return Mean;
        }

        if (t.Length > 1 && t[0] == 'p' && double.TryParse(t.AsSpan(1), NumberStyles.Float, CultureInfo.InvariantCulture, out var pct) &&
            pct is >= 0 and <= 100)
        {
            return pct == 0 ? Min : new RepeatStatistic(StatisticKind.Quantile, pct / 100);
        }

        throw new FormatException($"statistic '{text}' is not one of min, median, mean, pNN (a percentile from 0 to 100, e.g. p10)");
    }

    /// <summary>Linear-interpolated quantile of sorted values (type 7, as numpy's default).</summary>
    public static double QuantileOfSorted(ReadOnlySpan<double> sorted, double q)
    {
        if (sorted.Length == 1)
        {
            return sorted[0];
        }

        var pos = q * (sorted.Length - 1);
        var lo = (int)Math.Floor(pos);
        var hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + ((pos - lo) * (sorted[hi] - sorted[lo]));
    }

    private static double Average(ReadOnlySpan<double> values)
    {
        var sum = 0.0;
        foreach (var v in values)
        {
            sum += v;
        }

        return sum / values.Length;
    }
}
