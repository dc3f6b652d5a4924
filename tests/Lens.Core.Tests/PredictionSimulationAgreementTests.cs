namespace Lens.Core.Tests;

/// <summary>
/// A request served alone is the request the model predicts: <see cref="DeploymentModel.Predict"/> (prefix sums over buckets) and a
/// one-request <see cref="ServingSimulation"/> (the scheduler, taking runs of identical steps at once) must agree exactly.
/// </summary>
public class PredictionSimulationAgreementTests
{
    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(3, false)]
    [InlineData(4, true)]
    [InlineData(5, true)]
    [InlineData(6, true)]
    public void Predict_and_a_one_request_simulation_agree_on_random_requests(int seed, bool batched)
    {
        var rng = new Random(seed);
        var buckets = Synthetic.RandomBuckets(rng, seed % 2 == 0 ? DecodeConvention.AfterAppend : DecodeConvention.BeforeAppend);
        // Batched models decode a lone request at the smallest batch bucket, here 2 or 1 by seed.
        buckets = buckets.WithBatch(batched ? (seed % 2 == 0 ? [2, 4, 8] : [1, 2, 4, 8]) : [1]);
        var model = new DeploymentModel(buckets,
            [.. buckets.Prefill.Select(p => new PrefillValues(p, 2 + (p * 0.01) + rng.NextDouble(), 0, double.NaN, 0, double.NaN))],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, 0.3 + (0.2 * b) + (d * 0.003) + rng.NextDouble(), 0, b)))],
            RepeatStatistic.Min, 0);
        var maxInput = Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1);
        for (var n = 0; n < 300; n++)
        {
            var i = rng.Next(1, maxInput + 1);
            var o = rng.Next(1, buckets.MaxSequence - i + 1);
            var arrival = rng.NextDouble() * 1000;
            var predicted = model.Predict(i, o);
            var served = ServingSimulation.Simulate(model, [new TraceRequest(arrival, i, o)]).Requests[0];
            Assert.Equal(arrival, served.StartMs);
            Assert.Equal(predicted.TtftMs, served.TtftMs, 9);
            Assert.Equal(predicted.E2eMs, served.E2eMs, 9);
            if (o == 1)
            {
                Assert.True(double.IsNaN(predicted.TpotMs) && double.IsNaN(served.TpotMs));
            }
            else
            {
                Assert.Equal(predicted.TpotMs, served.TpotMs, 9);
            }
        }
    }
}
