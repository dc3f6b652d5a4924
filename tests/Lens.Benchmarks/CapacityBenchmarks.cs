using BenchmarkDotNet.Attributes;
using Lens.Core;

namespace Lens.Benchmarks;

/// <summary>
/// Capacity planning (issue 20): 10 candidate layouts of an NxD-style deployment (max context 4096, seq len 8192, batch buckets
/// 1..64) whose step costs scale with the tensor-parallel degree, on a 100,000-request Poisson trace at 40 req/s (lognormal prompt
/// median 512, output median 256), SLO TTFT 2 s and TPOT 60 ms for 90% of requests, shared queue, with and without the headroom
/// search. The setup prints the plan (replicas per candidate and simulations run) so the figures can be read against it.
/// </summary>
[MemoryDiagnoser]
public class CapacityBenchmarks
{
    private CapacityCandidate[] _candidates = null!;
    private IReadOnlyList<TraceRequest> _trace = null!;
    private readonly CapacitySlo _slo = new(2000, 60, 0.9);

    [Params(false, true)]
    public bool Headroom { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var buckets = BucketPresets.NxdInference(4096, 8192).WithBatch(BucketPresets.BatchBuckets("pow2", 64));
        _candidates = [.. Enumerable.Range(0, 10).Select(k =>
        {
            // Layout k: 1, 2, 4 or 8 chips; more chips make steps faster but not proportionally; two device kinds at two prices.
            var chips = 1 << (k % 4);
            var speed = Math.Pow(chips, 0.7) * (k < 5 ? 1 : 1.3);
            var prefill = buckets.Prefill.Select(p => new PrefillValues(p, (10 + (p * 0.05)) / speed, 0.1, double.NaN, 0, double.NaN)).ToArray();
            var decode = buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, (5 + (0.2 * b) + (d * 0.001)) / speed, 0.01, b))).ToArray();
            var model = new DeploymentModel(buckets, prefill, decode, RepeatStatistic.Min, 0.01)
                .WithLayout(new DeploymentLayout(chips, k < 5 ? "kind-a" : "kind-b", k < 5 ? 1.0 : 1.6));
            return new CapacityCandidate($"layout-{k}-tp{chips}", model);
        })];
        _trace = new Workload { RequestsPerSecond = 40, InputDist = "lognormal:512,0.8", OutputDist = "lognormal:256,0.8", Count = 100_000, Seed = 1 }
            .Generate(buckets).Requests;
        var plan = Plan();
        Console.WriteLine("// " + string.Join("; ", plan.Candidates.Select(c =>
            $"{c.Model}: {c.Replicas} x {c.ChipsPerReplica} chips, {c.Attainment:P1}{(c.Cheapest ? " (cheapest)" : "")}")));
    }

    [Benchmark]
    public int PlanTenCandidates() => Plan().Candidates.Sum(c => c.Replicas);

    private CapacityPlan Plan() => CapacityPlanner.Plan(_candidates, _trace, _slo, new CapacityOptions(Headroom: Headroom));
}
