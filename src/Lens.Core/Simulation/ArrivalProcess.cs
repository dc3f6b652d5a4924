using MathNet.Numerics.Distributions;

namespace Lens.Core;

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
