using BenchmarkDotNet.Attributes;
using Lens.Core;

namespace Lens.Benchmarks;

/// <summary>
/// Cost of one prediction by <see cref="DeploymentModel"/>: single calls, and batches through caller-owned spans.
/// Requests are random (seeded) over the whole length range of an NxD-style deployment (max context 4096, seq len 8192).
/// </summary>
[MemoryDiagnoser]
public class PredictionBenchmarks
{
    private const int BatchSize = 4096;
    private DeploymentModel _model = null!;
    private int[] _inputs = null!;
    private int[] _outputs = null!;
    private Prediction[] _results = null!;

    [GlobalSetup]
    public void Setup()
    {
        var buckets = BucketPresets.NxdInference(4096, 8192);
        var rng = new Random(1);
        var prefill = buckets.Prefill.Select(p => new PrefillValues(p, 10 + (p * 0.05), 0.1, double.NaN, 0, double.NaN)).ToArray();
        var decode = buckets.Decode.Select(d => new DecodeValues(d, 1 + (d * 0.0005), 0.01)).ToArray();
        _model = new DeploymentModel(buckets, prefill, decode, RepeatStatistic.Min, 0.01);
        _inputs = new int[BatchSize];
        _outputs = new int[BatchSize];
        for (var n = 0; n < BatchSize; n++)
        {
            _inputs[n] = rng.Next(1, 4097);
            _outputs[n] = rng.Next(1, 8192 - _inputs[n] + 1);
        }

        _results = new Prediction[BatchSize];
    }

    /// <summary>One prediction per operation, cycling through the requests.</summary>
    [Benchmark(OperationsPerInvoke = BatchSize)]
    public double Single()
    {
        var sum = 0.0;
        for (var n = 0; n < BatchSize; n++)
        {
            sum += _model.Predict(_inputs[n], _outputs[n]).E2eMs;
        }

        return sum;
    }

    /// <summary>A batch of 4096 predictions; figures are per prediction.</summary>
    [Benchmark(OperationsPerInvoke = BatchSize)]
    public void Batched() => _model.PredictMany(_inputs, _outputs, _results);
}
