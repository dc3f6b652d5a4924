using System.Globalization;
using BenchmarkDotNet.Attributes;
using Lens.Core;

namespace Lens.Benchmarks;

/// <summary>
/// Cost of fitting a million measurement rows (issue 11, finding 3: the fit was quadratic in rows that share a prompt length).
/// Half the rows cycle through an NxD profiling plan (max context 1024, seq len 2048) with one-sided noise, so every point has
/// tens of thousands of repeats; the other half are random (I, O) pairs, so decode buckets hold thousands of prompt lengths.
/// None is tagged with its bucket, and every row has a TTFT. Run: <c>--filter '*FitBenchmarks*' --job short</c>.
/// </summary>
[MemoryDiagnoser]
public class FitBenchmarks
{
    private BucketSet _buckets = null!;
    private MeasuredRequest[] _rows = null!;
    private string _csv = null!;

    /// <summary>Rows to fit.</summary>
    [Params(1_000_000)]
    public int Rows { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _buckets = BucketPresets.NxdInference(1024, 2048);
        _rows = Generate(_buckets, Rows, seed: 1);
        var csv = new StringWriter(CultureInfo.InvariantCulture);
        LensCsv.WriteMeasurements(csv, _rows);
        _csv = csv.ToString();
    }

    /// <summary>Tag and fit every bucket from rows already in memory.</summary>
    [Benchmark]
    public DeploymentModel Fit() => BucketFitter.Fit(_buckets, _rows, RepeatStatistic.Min);

    /// <summary>Parse the same rows as CSV text (all-or-nothing checks included), then fit them.</summary>
    [Benchmark]
    public DeploymentModel ParseAndFit()
    {
        var rows = LensCsv.ReadMeasurements(new StringReader(_csv), "bench.csv");
        return BucketFitter.Fit(_buckets, rows.Rows, RepeatStatistic.Min);
    }

    /// <summary>The rows described in the type's summary, timed by a step-function device with 0..5% one-sided noise.</summary>
    public static MeasuredRequest[] Generate(BucketSet buckets, int count, int seed)
    {
        var rng = new Random(seed);
        var prefill = buckets.Prefill.Select(p => new PrefillValues(p, 10 + (p * 0.05), 0, 10 + (p * 0.05), 0, double.NaN)).ToArray();
        var decode = buckets.Decode.Select(d => new DecodeValues(d, 1 + (d * 0.0005), 0)).ToArray();
        var device = new DeploymentModel(buckets, prefill, decode, RepeatStatistic.Min, 0);
        var plan = ProfilingPlanner.Create(buckets, new PlanOptions(Seed: seed)).Rows;
        var rows = new MeasuredRequest[count];
        for (var n = 0; n < count; n++)
        {
            int input, output;
            if (n % 2 == 0)
            {
                (input, output) = (plan[n / 2 % plan.Count].InputLength, plan[n / 2 % plan.Count].OutputLength);
            }
            else
            {
                input = rng.Next(1, buckets.MaxPrompt + 1);
                output = rng.Next(1, buckets.MaxSequence - input + 1);
            }

            var p = device.Predict(input, output);
            var slow = 1 + (rng.NextDouble() * 0.05);
            rows[n] = new MeasuredRequest(input, output, p.E2eMs * slow, p.TtftMs * slow);
        }

        return rows;
    }
}
