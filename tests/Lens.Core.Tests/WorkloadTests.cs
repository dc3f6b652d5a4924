namespace Lens.Core.Tests;

public class WorkloadTests
{
    private static readonly BucketSet Buckets = new([64], [64, 128], DecodeConvention.AfterAppend, [1, 2, 4]);

    private static string Name(WorkloadField field) => "<" + field + ">";

    [Fact]
    public void The_same_rate_lengths_and_seed_give_the_same_trace()
    {
        var spec = new Workload { RequestsPerSecond = 5, Count = 2000, Seed = 3, InputDist = "uniform:1-64", OutputDist = "lognormal:30,0.8" };
        var a = spec.Generate(Buckets);
        Assert.Equal(a.Requests, spec.Generate(Buckets).Requests);
        Assert.Equal(a.Requests, (spec with { }).Generate(Buckets).Requests);
        Assert.NotEqual(a.Requests, (spec with { Seed = 4 }).Generate(Buckets).Requests);
        Assert.All(a.Requests, r => Assert.Null(Buckets.CheckRequest(r.InputLength, r.OutputLength)));
        Assert.InRange(2000 / (a.Requests[^1].ArrivalMs / 1000), 4.5, 5.5); // about 5 requests per second
        Assert.True(a.Requests.Zip(a.Requests.Skip(1)).All(p => p.First.ArrivalMs <= p.Second.ArrivalMs));
    }

    [Fact]
    public void Generation_draws_gap_prompt_output_per_request_from_one_seeded_random()
    {
        // The written rule, by hand: uniform:MIN-MAX is MIN + floor(u * (MAX - MIN + 1)); Poisson gaps -ln(1 - u) * 1000 / rate.
        var spec = new Workload { RequestsPerSecond = 4, Count = 50, Seed = 9, InputDist = "uniform:10-20", OutputDist = "uniform:1-5" };
        var rng = new Random(9);
        var t = 0.0;
        var expected = new List<TraceRequest>();
        for (var n = 0; n < 50; n++)
        {
            t += -Math.Log(1 - rng.NextDouble()) * (1000 / 4.0);
            var i = 10 + (int)Math.Floor(rng.NextDouble() * 11);
            var o = 1 + (int)Math.Floor(rng.NextDouble() * 5);
            expected.Add(new TraceRequest(t, i, o));
        }

        Assert.Equal(expected, spec.Draw(Buckets));
        Assert.Equal(expected, spec.Generate(Buckets).Requests); // all within the buckets: nothing clamped
        Assert.Equal(0, spec.Generate(Buckets).Clamped);
    }

    [Fact]
    public void Default_lengths_are_uniform_over_the_buckets_and_max_output_caps_draws()
    {
        var spec = new Workload { RequestsPerSecond = 50, Count = 3000, Seed = 1 };
        var drawn = spec.Draw(Buckets);
        Assert.Equal(1, drawn.Min(r => r.InputLength));
        Assert.Equal(64, drawn.Max(r => r.InputLength));       // min(pm, dn - 1) = 64
        Assert.Equal(127, drawn.Max(r => r.OutputLength));     // dn - 1
        var capped = (spec with { MaxOutput = 10, OutputDist = "fixed:40" }).Draw(Buckets);
        Assert.All(capped, r => Assert.Equal(10, r.OutputLength));
    }

    [Fact]
    public void Fit_clamps_the_prompt_then_the_output_and_counts_the_requests_it_changed()
    {
        var small = new BucketSet([32], [48]); // prompts up to 32, sequences up to 48
        TraceRequest[] trace = [new(0, 10, 5), new(1, 40, 5), new(2, 20, 40), new(3, 47, 1), new(4, 32, 16)];
        var fitted = Workload.Fit(small, trace);
        Assert.Equal([new(0, 10, 5), new(1, 32, 5), new(2, 20, 28), new(3, 32, 1), new(4, 32, 16)], fitted.Requests);
        Assert.Equal(3, fitted.Clamped);
        Assert.Equal("3 of 5 requests were clamped into the buckets (prompt <= 32, I + O <= 48)", fitted.ClampNote);
        Assert.Null(Workload.Fit(small, [new TraceRequest(0, 1, 1)]).ClampNote);

        // Generation is the draw clamped by this rule.
        var spec = new Workload { RequestsPerSecond = 5, Count = 500, Seed = 2, InputDist = "uniform:1-64", OutputDist = "uniform:1-40" };
        var generated = spec.Generate(small);
        var byRule = Workload.Fit(small, spec.Draw(small));
        Assert.Equal(byRule.Requests, generated.Requests);
        Assert.Equal(byRule.Clamped, generated.Clamped);
        Assert.InRange(generated.Clamped, 1, 499);
    }

    [Theory]
    [InlineData(nameof(Workload.Replicas), 0, WorkloadField.Replicas, "<Replicas> must be in 1..10000; got 0")]
    [InlineData(nameof(Workload.Replicas), 10_001, WorkloadField.Replicas, "<Replicas> must be in 1..10000; got 10001")]
    [InlineData(nameof(Workload.Count), 0, WorkloadField.Count, "<Count> must be in 1..500; got 0")]
    [InlineData(nameof(Workload.Count), 501, WorkloadField.Count, "<Count> must be in 1..500; got 501")]
    [InlineData(nameof(Workload.MaxNumSeqs), 8, WorkloadField.MaxNumSeqs, "<MaxNumSeqs> must be at most the largest batch bucket 4 (allowed 1..4); got 8")]
    [InlineData(nameof(Workload.MaxNumSeqs), 0, WorkloadField.MaxNumSeqs, "(allowed 1..4); got 0")]
    [InlineData(nameof(Workload.MaxOutput), 0, WorkloadField.MaxOutput, "<MaxOutput> must be at least 1; got 0")]
    public void Validate_names_the_field_and_its_allowed_range(string property, int value, WorkloadField field, string message)
    {
        var good = new Workload { RequestsPerSecond = 2, Count = 100 };
        Assert.Null(good.Validate(Name, 500, Buckets));
        var bad = property switch
        {
            nameof(Workload.Replicas) => good with { Replicas = value },
            nameof(Workload.Count) => good with { Count = value },
            nameof(Workload.MaxNumSeqs) => good with { MaxNumSeqs = value },
            _ => good with { MaxOutput = value },
        };
        var error = bad.Validate(Name, 500, Buckets);
        Assert.Equal(field, error?.Field);
        Assert.EndsWith(message, error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_refuses_a_negative_or_half_slo_a_bad_rate_burstiness_or_distribution()
    {
        var good = new Workload { RequestsPerSecond = 2, SloTtftMs = 500, SloTpotMs = 50 };
        Assert.Null(good.Validate(Name));
        Assert.Equal(new WorkloadError(WorkloadField.SloTtft, "<SloTtft> must be a positive number of ms; got -5"),
            (good with { SloTtftMs = -5 }).Validate(Name));
        Assert.Equal(WorkloadField.SloTpot, (good with { SloTpotMs = 0 }).Validate(Name)?.Field);
        Assert.Equal(WorkloadField.SloTpot, (good with { SloTpotMs = double.NaN }).Validate(Name)?.Field);
        var half = (good with { SloTpotMs = null }).Validate(Name);
        Assert.Equal(WorkloadField.SloTpot, half?.Field);
        Assert.Contains("give <SloTtft> and <SloTpot> together", half!.Message, StringComparison.Ordinal);
        Assert.Equal(WorkloadField.Rate, (good with { RequestsPerSecond = 0 }).Validate(Name)?.Field);
        Assert.Equal(WorkloadField.Rate, (good with { RequestsPerSecond = double.PositiveInfinity }).Validate(Name)?.Field);
        Assert.Equal(WorkloadField.Burstiness, (good with { Burstiness = 101 }).Validate(Name)?.Field);
        var dist = (good with { OutputDist = "zipf:3" }).Validate(Name);
        Assert.Equal(WorkloadField.OutputDist, dist?.Field);
        Assert.StartsWith("<OutputDist> 'zipf:3'", dist!.Message, StringComparison.Ordinal);

        TraceRequest[] trace = [new(0, 5, 5)];
        Assert.Null(new Workload { Trace = trace }.Validate(Name, 1));
        Assert.Equal(WorkloadField.Trace, new Workload { Trace = [] }.Validate(Name)?.Field);
        Assert.Equal(WorkloadField.Trace, new Workload { Trace = [.. trace, .. trace] }.Validate(Name, 1)?.Field);
        Assert.Contains("not both", new Workload { Trace = trace, RequestsPerSecond = 2 }.Validate(Name)!.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => (good with { Replicas = 0 }).Draw(Buckets));
    }

    [Fact]
    public void A_given_trace_is_served_as_it_is()
    {
        TraceRequest[] trace = [new(0, 5, 5), new(3, 64, 64)];
        var served = new Workload { Trace = trace }.Generate(Buckets);
        Assert.Same(trace, served.Requests);
        Assert.Equal(0, served.Clamped);
        Assert.Equal(2, Workload.FirstOutOfRange(Buckets, [.. trace, new TraceRequest(4, 65, 1)])?.Index);
    }

    [Fact]
    public void Advise_keeps_the_current_deployment_and_serves_it_what_simulate_serves()
    {
        // A workload longer than the current buckets (prompts to 600 on buckets up to 512): simulate clamps it into them and says how
        // many; advise serves the current deployment the very same requests, says the same count, and keeps it in the comparison.
        int[] edges = [128, 256, 512];
        var source = WhatIfTests.Model(edges, edges, p => 3 + (0.01 * p), (_, d) => 0.5 + (0.001 * d));
        var costs = new BucketCostModel(source);
        var spec = new Workload { RequestsPerSecond = 2, Count = 300, Seed = 5, InputDist = "uniform:1-600", OutputDist = "uniform:1-150" };
        var simulated = spec.Generate(source.Buckets);
        Assert.InRange(simulated.Clamped, 1, 299);

        var advice = Advisor.Advise(costs, new AdviceQuery(spec.Generate(Advisor.Supported(costs)).Requests, MaxBuckets: 2));
        Assert.NotNull(advice.Current);
        Assert.Null(advice.CurrentReason);
        Assert.Equal(simulated.ClampNote, advice.CurrentClampNote);
        Assert.Equal(WorkloadSimulation.Run(source, simulated.Requests), advice.Current!.Serving);
        Assert.Equal(Advisor.MeanE2e(source, simulated.Requests), advice.Current.MeanE2eMs, 12);
        Assert.Contains(advice.Frontier, f => f.Prefill[^1] > 512); // the candidates still cover the whole workload

        // Within the buckets nothing is clamped, and the note says so by its absence.
        var inside = spec with { InputDist = "uniform:1-300" };
        Assert.Null(Advisor.Advise(costs, new AdviceQuery(inside.Generate(Advisor.Supported(costs)).Requests, MaxBuckets: 1)).CurrentClampNote);
    }

    [Fact]
    public void Overloaded_means_busy_longer_than_the_arrivals_span()
    {
        // Each request takes 10 + 9 * 1 = 19 ms alone; 20 arrive 10 ms apart (190 ms of span, 380 ms of work): overloaded. 40 ms apart:
        // 760 ms of span for 380 of work: not.
        var model = new DeploymentModel(new BucketSet([64], [64]), [new PrefillValues(64, 10, 0, double.NaN, 0, double.NaN)],
            [new DecodeValues(64, 1, 0)], RepeatStatistic.Min, 0);
        TraceRequest[] Trace(double gap) => [.. Enumerable.Range(0, 20).Select(n => new TraceRequest(n * gap, 5, 10))];
        Assert.True(Advisor.IsOverloaded(ServingSimulation.Simulate(model, Trace(10)), Trace(10)));
        Assert.False(Advisor.IsOverloaded(ServingSimulation.Simulate(model, Trace(40)), Trace(40)));
        Assert.False(Advisor.IsOverloaded(ServingSimulation.Simulate(model, [new TraceRequest(0, 5, 10)]), [new TraceRequest(0, 5, 10)]));
    }

    [Fact]
    public void Advice_marks_the_budgets_a_workload_overloads()
    {
        // With one bucket every prompt pads to 2000 (A = 23 ms) and every step runs at about 2064 (S = 2.56 ms): 174 ms a request,
        // one every 60 ms, so one replica cannot keep up. Three buckets serve the short ones in about 40 ms: it can.
        int[] edges = [128, 256, 512, 1024, 2048];
        var source = WhatIfTests.Model(edges, edges, p => 3 + (0.01 * p), (_, d) => 0.5 + (0.001 * d));
        var trace = Enumerable.Range(0, 400).Select(n => new TraceRequest(n * 60.0, n % 50 == 0 ? 2000 : 50, 60)).ToArray();
        var advice = Advisor.Advise(new BucketCostModel(source), new AdviceQuery(trace, MaxBuckets: 3));
        Assert.True(advice.Frontier[0].Overloaded);
        Assert.False(advice.Frontier[^1].Overloaded);
        Assert.True(advice.Frontier[0].Serving.E2e.P90 > 10 * advice.Frontier[^1].Serving.E2e.P90);
        Assert.Contains("\"overloaded\": true", AdviceJson.Serialize(advice, "m.json", source.Buckets), StringComparison.Ordinal);
    }
}
