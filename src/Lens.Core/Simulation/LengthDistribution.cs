using System.Globalization;
using MathNet.Numerics.Distributions;

namespace Lens.Core;

/// <summary>
/// A distribution of token lengths, written as text: <c>fixed:N</c>, <c>uniform:MIN-MAX</c> (inclusive), <c>normal:MEAN,SD</c> or
/// <c>lognormal:MEDIAN,SIGMA</c> (sigma of the log). Draws are rounded and at least 1.
/// </summary>
public sealed class LengthDistribution
{
    private readonly Func<Random, double> _draw;

    private LengthDistribution(string text, Func<Random, double> draw)
    {
        Text = text;
        _draw = draw;
    }

    public string Text { get; }

    public int Draw(Random rng) => (int)Math.Clamp(Math.Round(_draw(rng)), 1, int.MaxValue);

    public override string ToString() => Text;

    /// <summary>Parses a distribution; <paramref name="what"/> names the option in errors.</summary>
    public static LengthDistribution Parse(string text, string what)
    {
        ArgumentNullException.ThrowIfNull(text);
        const string Forms = "fixed:N, uniform:MIN-MAX, normal:MEAN,SD or lognormal:MEDIAN,SIGMA";
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var kind = colon < 0 ? text : text[..colon];
        var args = colon < 0 ? "" : text[(colon + 1)..];
        double[] Numbers(char separator, int count)
        {
            var parts = args.Split(separator);
            var values = new double[parts.Length];
            if (parts.Length != count || parts.Where((p, k) =>
                    !double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out values[k]) || !double.IsFinite(values[k]) ||
                    values[k] < 0 || values[k] > 10_000_000).Any())
            {
                throw new ArgumentException($"{what} '{text}': expected {Forms} with numbers from 0 to 10,000,000");
            }

            return values;
        }

        switch (kind.ToLowerInvariant())
        {
            case "fixed":
                var n = Numbers(',', 1)[0];
                return n >= 1 ? new(text, _ => n) : throw new ArgumentException($"{what} '{text}': a fixed length must be at least 1");
            case "uniform":
                var u = Numbers('-', 2);
                if (u[0] < 1 || u[1] < u[0])
                {
                    throw new ArgumentException($"{what} '{text}': uniform needs 1 <= MIN <= MAX");
                }

                return new(text, rng => u[0] + Math.Floor(rng.NextDouble() * (Math.Floor(u[1]) - Math.Ceiling(u[0]) + 1)));
            case "normal":
                var g = Numbers(',', 2);
                return new(text, rng => Normal.Sample(rng, g[0], g[1]));
            case "lognormal":
                var l = Numbers(',', 2);
                return l[0] >= 1
                    ? new(text, rng => LogNormal.Sample(rng, Math.Log(l[0]), l[1]))
                    : throw new ArgumentException($"{what} '{text}': the median must be at least 1");
            default:
                throw new ArgumentException($"{what} '{text}': unknown distribution '{kind}'; expected {Forms}");
        }
    }
}
