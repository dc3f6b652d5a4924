using BenchmarkDotNet.Attributes;
using Lens.Core;

namespace Lens.Benchmarks;

/// <summary>
/// The serving simulation under every scheduling policy (issue 18, "Speed"): an NxD-sized deployment (prompts up to 4096, sequences
/// up to 8192) with batch buckets 1..max_num_seqs (pow2), Poisson arrivals, lognormal prompt (median 512) and output (median 256)
/// lengths. Policies: prefill-first padded (decode buckets 128..8192 pow2); prefill-first paged (blocks of 128 tokens, block buckets
/// 16..8192 pow2 so the KV capacity never binds before max_num_seqs does); chunked (budget 2048, token buckets 64..2048 pow2, the
/// padded decode buckets as context buckets). Regimes: 60% of the deployment's own capacity, and overload (twice its capacity,
/// unbounded queue). The capacity is measured by this setup (the throughput of a saturated run), not assumed. The setup prints the
/// steps one run simulates (prefill-first: decode steps; chunked: every step), so steps per second = steps / the measured mean.
/// </summary>
[MemoryDiagnoser]
public class ServingBenchmarks
{
    private DeploymentModel _model = null!;
    private IReadOnlyList<TraceRequest> _trace = null!;

    [Params("padded", "paged", "chunked")]
    public string Policy { get; set; } = "padded";

    [Params("load60", "overload")]
    public string Regime { get; set; } = "load60";

    [Params(64, 256)]
    public int MaxNumSeqs { get; set; }

    [Params(20_000)]
    public int Requests { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _model = Model(Policy, MaxNumSeqs);
        Workload Mix(double rate) =>
            new() { RequestsPerSecond = rate, InputDist = "lognormal:512,0.8", OutputDist = "lognormal:256,0.8", Count = Requests, Seed = 1 };

        var saturated = ServingSimulation.Simulate(_model, Mix(1e6).Generate(_model).Requests, MaxNumSeqs).Summarize();
        var capacity = saturated.RequestsPerSecond;
        _trace = Mix(Regime == "overload" ? 2 * capacity : 0.6 * capacity).Generate(_model).Requests;
        var run = ServingSimulation.Simulate(_model, _trace, MaxNumSeqs);
        var summary = run.Summarize();
        Console.WriteLine($"// {Policy} {Regime} max_num_seqs {MaxNumSeqs}: capacity {capacity:0.##} req/s; {Requests} requests, " +
                          $"{run.DecodeSteps:N0} steps, {summary.RequestsPerSecond:0.##} req/s served, utilization {summary.Utilization:P0}");
    }

    [Benchmark]
    public long Simulate() => ServingSimulation.Simulate(_model, _trace, MaxNumSeqs).DecodeSteps;

    internal static DeploymentModel Model(string policy, int maxNumSeqs)
    {
        var batch = BucketPresets.BatchBuckets("pow2", maxNumSeqs);
        int[] prefill = [128, 256, 512, 1024, 2048, 4096];
        int[] decode = [128, 256, 512, 1024, 2048, 4096, 8192];
        (BucketSet Buckets, SchedulingPolicy Policy) deployment = policy switch
        {
            "paged" => (BucketSet.Paged(prefill, [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192], DecodeConvention.AfterAppend, batch),
                SchedulingPolicy.PagedDecode(128, maxModelLen: 8192)),
            "chunked" => (new BucketSet(prefill, decode, DecodeConvention.AfterAppend, [64, 128, 256, 512, 1024, 2048]),
                SchedulingPolicy.ChunkedPrefill(2048, [64, 128, 256, 512, 1024, 2048], maxNumSeqs)),
            _ => (new BucketSet(prefill, decode, DecodeConvention.AfterAppend, batch), SchedulingPolicy.Default),
        };
        var buckets = deployment.Buckets;
        var values = buckets.Prefill.Select(p => new PrefillValues(p, 10 + (p * 0.05), 0.1, double.NaN, 0, double.NaN)).ToArray();
        var steps = buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, 5 + (0.02 * b) + (d * 0.001), 0.01, b))).ToArray();
        var model = new DeploymentModel(buckets, values, steps, RepeatStatistic.Min, 0.01);
        return deployment.Policy.IsDefault ? model : model.WithPolicy(deployment.Policy);
    }
}
