namespace Lens.Core.Tests;

/// <summary>
/// Live-traffic monitoring under continuous batching against a simulated device whose true costs are known: the observed window is
/// what the true device serves (with one-sided noise), the analysis sees only the profiled model.
/// </summary>
public sealed class TrafficAnalysisTests
{
    private static readonly BucketSet Buckets = new([128, 256, 512], [256, 512, 1024], DecodeConvention.AfterAppend, [1, 2, 4, 8]);

    private static DeploymentModel Model(Func<BucketId, double> scale) =>
        new(Buckets,
            [.. Buckets.Prefill.Select(p => Prefill(p, (5 + (p * 0.03)) * scale(new BucketId(BucketKind.Prefill, p))))],
            [.. Buckets.Batch.SelectMany(b => Buckets.Decode.Select(d =>
                Decode(d, b, (0.5 + (0.1 * b) + (d * 0.002)) * scale(new BucketId(BucketKind.Decode, d, b)))))],
            RepeatStatistic.Min, 0.02);

    private static PrefillValues Prefill(int edge, double a) => new(edge, a, a * 0.01, a * 0.9, a * 0.01, double.NaN);

    private static DecodeValues Decode(int edge, int batch, double step) => new(edge, step, step * 0.01, batch);

    private static readonly DeploymentModel Profiled = Model(_ => 1);

    /// <summary>Poisson arrivals at <paramref name="load"/> of the profiled deployment's capacity; prompts 1..500, outputs 16..256.</summary>
    private static TraceRequest[] Traffic(double load, int count, int seed)
    {
        var rng = new Random(seed);
        var lengths = Enumerable.Range(0, count).Select(_ => (I: rng.Next(1, 501), O: rng.Next(16, 257))).ToArray();
        var saturated = ServingSimulation.Simulate(Profiled, [.. lengths.Select(l => new TraceRequest(0, l.I, l.O))]);
        var capacity = count / (saturated.Requests.Max(r => r.FinishMs) / 1000);
        var rate = load * capacity;
        var t = 0.0;
        return [.. lengths.Select(l => new TraceRequest(t += -Math.Log(1 - rng.NextDouble()) / rate * 1000, l.I, l.O))];
    }

    /// <summary>What the true device serves: each request's times with one-sided noise (interference only slows).</summary>
    private static ObservedRequest[] Observe(DeploymentModel truth, TraceRequest[] trace, double noise, int seed, double offsetMs = 1.7e12)
    {
        var rng = new Random(seed);
        var run = ServingSimulation.Simulate(truth, trace);
        return [.. trace.Select((r, n) =>
        {
            var slow = 1 + Math.Abs(Normal(rng) * noise);
            var ttft = run.Requests[n].TtftMs * slow;
            return new ObservedRequest(r.ArrivalMs + offsetMs, r.InputLength, r.OutputLength, ttft, Math.Max(ttft, run.Requests[n].E2eMs * slow));
        })];
    }

    private static double Normal(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    [Fact]
    public void A_requests_decode_part_is_its_e2e_exposure_less_its_ttft_exposure()
    {
        var e2e = new ExposureRow([0, 3, 5, 9], [4.0, 2.0, 1.0, 6.0]);
        var ttft = new ExposureRow([0, 5], [4.0, 0.5]);
        var decode = e2e.Minus(ttft);
        Assert.Equal([3, 5, 9], decode.Cells);
        Assert.Equal([2.0, 0.5, 6.0], decode.Ms);
        Assert.Empty(ttft.Minus(ttft).Cells);
    }

    [Fact]
    public void A_window_the_profile_explains_exactly_has_no_shift_and_no_error()
    {
        var report = TrafficAnalysis.Analyze(Profiled, Observe(Profiled, Traffic(0.6, 1000, 1), 0, 2));
        Assert.Equal(1000, report.Requests);
        Assert.True(report.E2eMape < 0.1 && report.TtftMape < 0.1, $"MAPE {report.E2eMape} / {report.TtftMape}");
        Assert.All(report.Cells, c => Assert.True(Math.Abs(c.Shift) < 1e-3, $"{c.Cell}: {c.Shift}"));
        Assert.Empty(report.OutOfBand);
    }

    [Fact]
    public void Every_cell_slower_by_a_fifth_is_the_common_shift_and_no_cell_is_blamed()
    {
        var report = TrafficAnalysis.Analyze(Profiled, Observe(Model(_ => 1.2), Traffic(0.6, 1000, 3), 0, 4));
        Assert.InRange(report.CommonShift, 0.19, 0.21);
        Assert.Empty(report.OutOfBand);

        var noisy = TrafficAnalysis.Analyze(Profiled, Observe(Model(_ => 1.2), Traffic(0.6, 1000, 5), 0.03, 6));
        Assert.InRange(noisy.CommonShift, 0.18, 0.26); // the noise only slows: about 2.4% on top
        Assert.Empty(noisy.OutOfBand);
    }

    /// <summary>
    /// A device that became much slower everywhere overloads at the traffic the profile sustains: the observed queue grows through the
    /// window, latencies are many times the profile's replay. That is the machine (the common shift), never a cell.
    /// </summary>
    [Theory]
    [InlineData(2.0, 0.6, 31)]
    [InlineData(3.0, 0.6, 32)]
    [InlineData(1.5, 0.85, 33)]
    public void A_device_slowed_everywhere_into_overload_is_the_common_shift(double slowdown, double load, int seed)
    {
        var trace = Traffic(load, 1000, seed);
        var observed = Observe(Model(_ => slowdown), trace, 0.02, seed + 100);
        var replay = ServingSimulation.Simulate(Profiled, trace);
        Assert.True(observed.Select((o, n) => o.E2eMs / replay.Requests[n].E2eMs).Average() > 2 * slowdown,
            "the slowed device is not overloaded: the test does not test what it says");

        var report = TrafficAnalysis.Analyze(Profiled, observed);
        Assert.InRange(report.CommonShift, (slowdown - 1) * 0.9, ((slowdown - 1) * 1.1) + 0.03);
        Assert.Empty(report.OutOfBand);
    }

    [Theory]
    [InlineData(4, 512, 11)]
    [InlineData(2, 1024, 12)]
    [InlineData(1, 256, 13)]
    public void One_decode_cell_slower_by_30_percent_is_the_only_cell_out_of_band_and_its_cost_is_re_estimated(int batch, int edge, int seed)
    {
        var slowed = new BucketId(BucketKind.Decode, edge, batch);
        var truth = Model(id => id == slowed ? 1.3 : 1);
        var report = TrafficAnalysis.Analyze(Profiled, Observe(truth, Traffic(0.6, 2000, seed), 0.02, seed + 100));

        var flagged = Assert.Single(report.OutOfBand);
        Assert.Equal(slowed, flagged.Cell);
        Assert.True(report.CommonShift < 0.05, $"common shift {report.CommonShift}");
        var trueMs = truth.StepMs(Buckets.BatchIndex(batch), Buckets.DecodeIndex(edge));
        Assert.NotNull(flagged.EstimatedMs);
        Assert.InRange(flagged.EstimatedMs!.Value / trueMs, 0.9, 1.1);
    }

    [Fact]
    public void A_cells_estimate_is_its_cost_on_the_machine_as_profiled_not_with_the_machines_shift_of_the_window()
    {
        // The machine 15% slower everywhere in this window, and one cell 30% slower besides: the model's other cells keep their
        // profiled costs, so the cell's estimate must be 1.3 x its profile, not 1.3 x 1.15.
        var slowed = new BucketId(BucketKind.Decode, 512, 4);
        var truth = Model(id => id == slowed ? 1.3 * 1.15 : 1.15);
        var report = TrafficAnalysis.Analyze(Profiled, Observe(truth, Traffic(0.5, 2000, 41), 0.02, 42));

        Assert.InRange(report.CommonShift, 0.12, 0.19);
        var cell = Assert.Single(report.OutOfBand);
        Assert.Equal(slowed, cell.Cell);
        var profiledMs = Profiled.StepMs(Buckets.BatchIndex(4), Buckets.DecodeIndex(512));
        Assert.InRange(cell.EstimatedMs!.Value / profiledMs, 1.3 * 0.93, 1.3 * 1.07);
    }

    [Fact]
    public void A_slower_prefill_bucket_is_found_from_ttft_and_e2e()
    {
        var slowed = new BucketId(BucketKind.Prefill, 256);
        var report = TrafficAnalysis.Analyze(Profiled, Observe(Model(id => id == slowed ? 1.3 : 1), Traffic(0.6, 2000, 21), 0.02, 22));
        Assert.Equal(slowed, Assert.Single(report.OutOfBand).Cell);
    }

    [Fact]
    public void Requests_the_buckets_cannot_serve_are_counted_and_left_out()
    {
        var window = Observe(Profiled, Traffic(0.3, 200, 31), 0, 32).ToList();
        window.Add(new ObservedRequest(window[^1].ArrivalMs + 1, 900, 200, 10, 50));
        var report = TrafficAnalysis.Analyze(Profiled, window);
        Assert.Equal((200, 1), (report.Requests, report.Skipped));
        Assert.Throws<ArgumentException>(() => TrafficAnalysis.Analyze(Profiled, [new ObservedRequest(0, 900, 200, 10, 50)]));
    }
}
