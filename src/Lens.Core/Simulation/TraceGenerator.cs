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

/// <summary>How requests arrive: Poisson, or bursty with Gamma-distributed gaps of the given coefficient of variation.</summary>
/// <param name="Burstiness">Coefficient of variation of the gaps between arrivals: 1 is Poisson, above 1 bursty, below 1 regular.</param>
public sealed record ArrivalProcess(double RequestsPerSecond, double Burstiness = 1)
{
    public double NextGapMs(Random rng)
    {
        var mean = 1000 / RequestsPerSecond;
        if (Burstiness == 1)
        {
            return -Math.Log(1 - rng.NextDouble()) * mean;
        }

        // Gamma gaps with shape k = 1 / cv^2 and the same mean.
        var shape = 1 / (Burstiness * Burstiness);
        return Gamma.Sample(rng, shape, shape / mean);
    }
}

/// <summary>Generates workload traces from an arrival process and length distributions, seeded and deterministic.</summary>
public static class TraceGenerator
{
    public const int MaxCount = 10_000_000;

    /// <summary>
    /// A trace from distributions given as text (see <see cref="LengthDistribution.Parse"/>); an absent one is uniform over what the
    /// buckets serve (prompts 1..min(pm, dn - 1), outputs 1..<paramref name="maxOutput"/> or dn - 1). The option names go into errors.
    /// </summary>
    public static IReadOnlyList<TraceRequest> Generate(BucketSet buckets, ArrivalProcess arrivals, string? inputDist, string inputOption,
        string? outputDist, string outputOption, int count, int seed, out int clamped, int? maxOutput = null)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        var maxInput = Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1);
        var input = LengthDistribution.Parse(inputDist ?? $"uniform:1-{maxInput}", inputOption);
        var output = LengthDistribution.Parse(outputDist ?? $"uniform:1-{maxOutput ?? buckets.MaxSequence - 1}", outputOption);
        return Generate(buckets, arrivals, input, output, count, seed, out clamped);
    }

    /// <summary>
    /// A trace of <paramref name="count"/> requests. Lengths that the buckets cannot serve are clamped into them (prompt at most
    /// <c>min(pm, dn - 1)</c>, output at most <c>dn - I</c>); <paramref name="clamped"/> counts the requests that were.
    /// </summary>
    public static IReadOnlyList<TraceRequest> Generate(BucketSet buckets, ArrivalProcess arrivals, LengthDistribution input,
        LengthDistribution output, int count, int seed, out int clamped)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(arrivals);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        if (!(arrivals.RequestsPerSecond > 0) || !double.IsFinite(arrivals.RequestsPerSecond) || !(arrivals.Burstiness > 0) ||
            arrivals.Burstiness > 100)
        {
            throw new ArgumentOutOfRangeException(nameof(arrivals), arrivals, "the rate must be a positive number and the burstiness in (0, 100]");
        }

        if (count is < 1 or > MaxCount)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"the count must be in 1..{MaxCount}");
        }

        var rng = new Random(seed);
        var maxInput = Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1);
        var trace = new TraceRequest[count];
        var t = 0.0;
        clamped = 0;
        for (var n = 0; n < count; n++)
        {
            t += arrivals.NextGapMs(rng);
            int i = input.Draw(rng), o = output.Draw(rng);
            var fitI = Math.Min(i, maxInput);
            var fitO = Math.Min(o, buckets.MaxSequence - fitI);
            if (fitI != i || fitO != o)
            {
                clamped++;
            }

            trace[n] = new TraceRequest(t, fitI, fitO);
        }

        return trace;
    }
}
