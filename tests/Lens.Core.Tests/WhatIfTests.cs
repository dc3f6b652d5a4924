namespace Lens.Core.Tests;

public class WhatIfTests
{
    private static readonly int[] Pow2 = [128, 256, 512, 1024, 2048];

    /// <summary>A profiled model whose costs follow known curves exactly.</summary>
    internal static DeploymentModel Model(int[] prefill, int[] decode, Func<int, double> a, Func<int, int, double> s, int[]? batch = null)
    {
        var buckets = new BucketSet(prefill, decode, batch: batch);
        return new DeploymentModel(buckets, [.. prefill.Select(p => new PrefillValues(p, a(p), 0.01, double.NaN, 0, double.NaN))],
            [.. buckets.Batch.SelectMany(b => decode.Select(d => new DecodeValues(d, s(b, d), 0.001, b)))], RepeatStatistic.Parse("min"), 0.01);
    }

    [Fact]
    public void Quadratic_truth_is_recovered_exactly_and_chosen()
    {
        static double Truth(int p) => 3 + (0.01 * p) + (2e-6 * p * p);
        var curve = CostCurve.Fit([.. Pow2.Select(p => new CostPoint(p, 1, Truth(p)))], "A");
        Assert.Equal("1 + L + L^2", curve.Form);
        foreach (var p in new[] { 1, 100, 384, 768, 1536, 3000 })
        {
            Assert.Equal(Truth(p), curve.Ms(p), 1e-9);
        }

        Assert.True(curve.LoboMape < 1e-9);
        Assert.True(curve.PredictionStandardError(768) < 1e-6);
    }

    [Fact]
    public void Linear_truth_keeps_the_linear_form()
    {
        var curve = CostCurve.Fit([.. Pow2.Select(d => new CostPoint(d, 1, 0.5 + (0.001 * d)))], "S");
        Assert.Equal("1 + L", curve.Form);
        Assert.Equal(0.5 + (0.001 * 640), curve.Ms(640), 1e-9);
    }

    [Fact]
    public void Batched_truth_is_recovered_between_batch_buckets()
    {
        static double Truth(int b, int d) => 1 + (0.2 * b) + (0.001 * d) + (0.0005 * b * d);
        int[] batches = [1, 2, 4, 8];
        var points = batches.SelectMany(b => Pow2.Select(d => new CostPoint(d, b, Truth(b, d)))).ToArray();
        var curve = CostCurve.Fit(points, "S");
        Assert.True(curve.Batched);
        Assert.Equal(Truth(3, 768), curve.Ms(768, 3), 1e-9);
        Assert.Equal(Truth(8, 2560), curve.Ms(2560, 8), 1e-9);
    }

    [Fact]
    public void Leave_one_bucket_out_error_matches_a_hand_computation()
    {
        // The line 1 + L: leave out 100: the line through (200, 14), (300, 20) gives 8 (error 0.2); leave out 200: through (100, 10),
        // (300, 20) gives 15 (1/14); leave out 300: through (100, 10), (200, 14) gives 18 (0.1).
        CostPoint[] points = [new(100, 1, 10), new(200, 1, 14), new(300, 1, 20)];
        var line = CostCurve.FitForm(points, 0b011, batched: false, lengthScale: 300, batchScale: 1);
        Assert.Equal("1 + L", line.Form);
        Assert.Equal((0.2 + (1.0 / 14) + 0.1) / 3, line.LoboMape!.Value, 1e-12);
        Assert.Equal(0.2, line.LoboMax!.Value, 1e-12);

        // 1 + L^2 bends upward with the costs: leave out 100: through (200, 14), (300, 20) gives 10.4 (0.04); leave out 200: 13.75
        // (0.25/14); leave out 300: 20 2/3 (1/30). The lowest of every two-term and one-term form, so it is chosen.
        var chosen = CostCurve.Fit(points, "A");
        Assert.Equal("1 + L^2", chosen.Form);
        Assert.Equal((0.04 + (0.25 / 14) + (1.0 / 30)) / 3, chosen.LoboMape!.Value, 1e-12);
    }

    [Fact]
    public void The_chosen_form_has_the_lowest_leave_one_bucket_out_error_of_all_forms()
    {
        var rng = new Random(8);
        for (var trial = 0; trial < 40; trial++)
        {
            var edges = Enumerable.Range(1, rng.Next(3, 7)).Select(k => k * 128).ToArray();
            var points = edges.Select(e => new CostPoint(e, 1, (1 + (0.01 * e) + (1e-5 * e * e)) * (1 + (0.1 * rng.NextDouble())))).ToArray();
            var chosen = CostCurve.Fit(points, "A");
            var lowest = Enumerable.Range(1, 7).Where(m => System.Numerics.BitOperations.PopCount((uint)m) <= points.Length - 1)
                .Min(m => CostCurve.FitForm(points, m, false, edges[^1], 1).LoboMape!.Value);
            Assert.Equal(lowest, chosen.LoboMape!.Value, 1e-12);
        }
    }

    [Fact]
    public void Two_buckets_keep_the_line_through_them()
    {
        var curve = CostCurve.Fit([new CostPoint(128, 1, 10), new CostPoint(256, 1, 14)], "A");
        Assert.Equal("1 + L", curve.Form);
        Assert.Equal(12, curve.Ms(192), 1e-9);
        Assert.Null(curve.LoboMape);
    }

    [Fact]
    public void Curves_are_monotone_even_when_the_costs_fall()
    {
        CostPoint[] points = [new(128, 1, 10), new(256, 1, 9.5), new(512, 1, 8), new(1024, 1, 9)];
        var curve = CostCurve.Fit(points, "A");
        Assert.All(curve.Coefficients, c => Assert.True(c >= 0));
        var previous = 0.0;
        for (var p = 1; p <= 1536; p += 7)
        {
            var v = curve.Ms(p);
            Assert.True(v >= previous - 1e-12, $"cost falls at {p}");
            previous = v;
        }
    }

    [Fact]
    public void Too_few_buckets_is_an_error_naming_the_curve()
    {
        var ex = Assert.Throws<ArgumentException>(() => CostCurve.Fit([new CostPoint(128, 1, 3)], "prefill cost A(p)"));
        Assert.Contains("prefill cost A(p)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void What_if_model_keeps_profiled_buckets_and_reads_the_rest_from_the_curves()
    {
        var source = Model(Pow2, Pow2, p => 3 + (0.01 * p), (_, d) => 0.5 + (0.001 * d));
        var costs = new BucketCostModel(source);
        var target = new BucketSet([128, 384, 640, 2048], [256, 384, 1024, 2048, 2560]);
        var model = WhatIfModels.Predict(costs, target);
        Assert.Equal(source.PrefillBuckets[0], model.PrefillBuckets[0] with { TtftMs = source.PrefillBuckets[0].TtftMs });
        Assert.Equal(3 + (0.01 * 384), model.PrefillBuckets[1].AMs, 1e-9);
        Assert.Equal(0.5 + (0.001 * 2560), model.DecodeBuckets[4].StepMs, 1e-9);
        Assert.Equal(0.01, model.PrefillBuckets[0].AStandardError);
        Assert.True(model.PrefillBuckets[1].AStandardError >= 0);

        var block = WhatIfModels.Describe(costs, target, "m.json");
        Assert.Equal(["prefill-128", "prefill-2048", "decode-256", "decode-1024", "decode-2048"], block.ProfiledBuckets);
        var json = ModelJson.Serialize(model, block);
        Assert.Equal("m.json", ModelJson.ReadPredicted(json)!.Source);
        Assert.Equal(model.Predict(300, 700).E2eMs, ModelJson.Deserialize(json, "w.json").Predict(300, 700).E2eMs, 1e-9);
    }

    [Fact]
    public void Intervals_widen_away_from_the_profiled_edges_when_the_costs_scatter()
    {
        var rng = new Random(3);
        var source = Model(Pow2, Pow2, p => (3 + (0.01 * p)) * (1 + (0.05 * rng.NextDouble())), (_, d) => 0.5 + (0.001 * d));
        var costs = new BucketCostModel(source);
        Assert.True(costs.PrefillCost(384).StandardError > costs.PrefillCost(256).StandardError); // predicted vs profiled
        Assert.False(costs.PrefillCost(384).Predicted && costs.PrefillCost(256).Predicted);
        // The curve's own uncertainty grows away from the profiled edges: more, relative to the cost, beyond them than between them.
        Assert.True(costs.PrefillCost(3000).StandardError / costs.PrefillCost(3000).Ms > costs.PrefillCost(1100).StandardError / costs.PrefillCost(1100).Ms);
        var model = WhatIfModels.Predict(costs, new BucketSet([128, 384, 2048], [2048]));
        var profiled = model.Predict(100, 1);
        var predicted = model.Predict(300, 1);
        Assert.True((predicted.E2eHighMs - predicted.E2eLowMs) / predicted.E2eMs > (profiled.E2eHighMs - profiled.E2eLowMs) / profiled.E2eMs);
    }

    [Theory]
    [InlineData(new[] { 128, 3100 }, new[] { 4096 }, null, "prefill bucket 3100", "allowed 1..3072")]
    [InlineData(new[] { 128 }, new[] { 1024, 3073 }, null, "decode bucket 3073", "allowed 1..3072")]
    [InlineData(new[] { 128 }, new[] { 1024 }, new[] { 1, 16 }, "batch bucket 16", "allowed 1..8")]
    public void What_if_refuses_far_extrapolation_naming_the_range(int[] prefill, int[] decode, int[]? batch, string what, string range)
    {
        var source = Model(Pow2, Pow2, p => 3 + (0.01 * p), (b, d) => 0.5 + (0.001 * d * b), [1, 2, 4, 8]);
        var ex = Assert.Throws<WhatIfRangeException>(() => WhatIfModels.Predict(new BucketCostModel(source), new BucketSet(prefill, decode, batch: batch)));
        Assert.Contains(what, ex.Message, StringComparison.Ordinal);
        Assert.Contains(range, ex.Message, StringComparison.Ordinal);
        Assert.Equal(batch is not null, ex.IsBatch);
    }

    [Fact]
    public void Edge_program_equals_brute_force_on_random_small_cases()
    {
        var rng = new Random(12);
        for (var trial = 0; trial < 300; trial++)
        {
            var m = rng.Next(1, 9);
            var candidates = Enumerable.Range(1, m).Select(j => j * 10).ToArray();
            var mass = candidates.Select(_ => (double)rng.Next(0, 5)).ToArray();
            var cost = candidates.Select(_ => rng.NextDouble() * 10).ToArray(); // not even monotone: the program is exact anyway
            var budget = rng.Next(1, 5);
            var (edges, best) = EdgeProgram.Best(candidates, mass, cost, budget);

            var brute = double.PositiveInfinity;
            for (var subset = 0; subset < 1 << (m - 1); subset++)
            {
                var chosen = Enumerable.Range(0, m - 1).Where(j => (subset & (1 << j)) != 0).Append(m - 1).ToArray();
                if (chosen.Length <= budget)
                {
                    brute = Math.Min(brute, Cost(chosen));
                }
            }

            Assert.Equal(brute, best, 1e-9);
            Assert.True(edges.Length <= budget && edges[^1] == candidates[^1]);
            Assert.Equal(best, Cost([.. edges.Select(e => Array.IndexOf(candidates, e))]), 1e-9);

            double Cost(int[] chosen)
            {
                double total = 0;
                var k = 0;
                for (var j = 0; j < m; j++)
                {
                    while (chosen[k] < j)
                    {
                        k++;
                    }

                    total += mass[j] * cost[chosen[k]];
                }

                return total;
            }
        }
    }

    [Fact]
    public void Advisor_picks_the_edges_that_fit_a_bimodal_workload()
    {
        var source = Model(Pow2, Pow2, p => 3 + (0.01 * p), (_, d) => 0.5 + (0.001 * d));
        var trace = Enumerable.Range(0, 200).Select(n => new TraceRequest(n * 100, n % 2 == 0 ? 100 : 1000, 20)).ToArray();
        var advice = Advisor.Advise(new BucketCostModel(source), new AdviceQuery(trace, MaxBuckets: 2));
        Assert.Equal([112, 1008], advice.Recommended.Prefill);
        // Decode steps run at lengths 101..119 and 1001..1019: one bucket up to 128 (rounded), one to the longest sequence 1020 -> 1024.
        Assert.Equal([128, 1024], advice.Recommended.Decode);
        Assert.True(advice.Recommended.MeanE2eMs < advice.Current!.MeanE2eMs);
        Assert.Equal(2, advice.Frontier.Count);
        Assert.True(advice.Frontier[1].MeanE2eMs < advice.Frontier[0].MeanE2eMs);
    }

    [Fact]
    public void Advisor_mean_e2e_equals_brute_force_over_candidate_sets()
    {
        var rng = new Random(5);
        var source = Model(Pow2, Pow2, p => 3 + (0.01 * p) + (1e-5 * p * p), (_, d) => 0.5 + (0.002 * d));
        var costs = new BucketCostModel(source);
        var trace = Enumerable.Range(0, 50).Select(n => new TraceRequest(n, rng.Next(1, 700), rng.Next(1, 300))).ToArray();
        var advice = Advisor.Advise(costs, new AdviceQuery(trace, MaxBuckets: 2, Granularity: 256));
        int[] prefill = [256, 512, 768], decode = [256, 512, 768, 1024];
        var best = double.PositiveInfinity;
        foreach (var p in Subsets(prefill))
        {
            foreach (var d in Subsets(decode))
            {
                best = Math.Min(best, Advisor.MeanE2e(WhatIfModels.Predict(costs, new BucketSet(p, d)), trace));
            }
        }

        Assert.Equal(best, advice.Recommended.MeanE2eMs, 1e-9);

        // Sets of at most 2 edges that keep the largest (the only ones that serve every request).
        static IEnumerable<int[]> Subsets(int[] edges) =>
            edges[..^1].Select(e => new[] { e, edges[^1] }).Append([edges[^1]]);
    }

    [Fact]
    public void Serving_choice_is_goodput_then_p90_within_one_percent_then_fewest_graphs()
    {
        static ScoredDeployment Candidate(string name, double goodput, double p90, int graphs)
        {
            var e2e = new LatencyPercentiles(p90 / 2, p90, p90 * 1.5, p90 * 2);
            var serving = new SimulationResult(100, 1, e2e, e2e, e2e, e2e, 10, 100, 0.5, 0.9) { GoodputPerSecond = goodput };
            return new ScoredDeployment(name, [128], [256], [1], graphs, 10, serving);
        }

        ScoredDeployment[] scored =
        [
            Candidate("less goodput, fastest", 8, 50, 2),
            Candidate("most goodput, slow", 9, 120, 3),
            Candidate("most goodput, fast, many graphs", 9, 100, 12),
            Candidate("most goodput, 0.5% slower, fewer graphs", 9, 100.5, 6),
        ];
        Assert.Equal("most goodput, 0.5% slower, fewer graphs", Advisor.BestServing(scored, hasSlo: true).Name);
        Assert.Equal("most goodput, fast, many graphs", Advisor.BestServing(scored[..3], hasSlo: true).Name);
        Assert.Equal("most goodput, fast, many graphs", Advisor.BestServing([.. scored[..3], Candidate("x", 9, 102, 1)], hasSlo: true).Name);
    }

    [Fact]
    public void Advisor_prefers_the_batch_buckets_with_more_goodput_and_sizes_replicas()
    {
        // Batching is nearly free per row: more sequences in flight serve the rate that one at a time cannot.
        var source = Model(Pow2, Pow2, p => 2 + (0.002 * p), (b, d) => 5 + (0.1 * b) + (0.0001 * d), [1, 2, 4, 8]);
        var trace = Enumerable.Range(0, 300).Select(n => new TraceRequest(n * 50.0, 100, 64)).ToArray();
        var slo = new ServiceObjectives(2000, 20);
        var advice = Advisor.Advise(new BucketCostModel(source), new AdviceQuery(trace, MaxBuckets: 2, Slo: slo, TargetRate: 60));
        Assert.Equal(advice.Frontier.Count * 4, advice.BatchSearch.Count); // each budget's edges with each prefix of 1, 2, 4, 8
        Assert.Equal([1, 2, 4, 8], advice.Recommended.Batch);
        Assert.Equal(advice.BatchSearch.Max(s => s.Serving.GoodputPerSecond), advice.Recommended.Serving.GoodputPerSecond);
        Assert.True(advice.Recommended.Serving.GoodputPerSecond > advice.BatchSearch[0].Serving.GoodputPerSecond);
        Assert.NotNull(advice.Replicas!.Replicas);
        Assert.True(advice.Replicas.Attainment >= 0.99);
    }

    [Fact]
    public void Advice_document_reads_back_to_the_same_advice()
    {
        var source = Model(Pow2, Pow2, p => 2 + (0.002 * p), (b, d) => 5 + (0.1 * b) + (0.0001 * d), [1, 2, 4]);
        var trace = Enumerable.Range(0, 100).Select(n => new TraceRequest(n * 50.0, 50 + n, n % 3 == 0 ? 1 : 40)).ToArray();
        var advice = Advisor.Advise(new BucketCostModel(source), new AdviceQuery(trace, MaxBuckets: 3, Slo: new(2000, 20), TargetRate: 40));
        var json = AdviceJson.Serialize(advice, "m.json", source.Buckets);

        var back = AdviceJson.Deserialize(json);
        Assert.Equal(json, AdviceJson.Serialize(back, "m.json", source.Buckets));
        Assert.Equal(advice.Recommended.Serving, back.Recommended.Serving); // goodput and the init-only figures included
        Assert.Equal(advice.Frontier.Select(f => f.Name), back.Frontier.Select(f => f.Name));
        Assert.Equal(advice.PrefillCurve.Form, back.PrefillCurve.Form);
        Assert.Throws<FormatException>(() => AdviceJson.Deserialize("{\"source\": \"m\"}"));
        Assert.Throws<FormatException>(() => AdviceJson.Deserialize("not json"));
    }

    [Fact]
    public void Advisor_refuses_an_empty_workload_and_lengths_beyond_the_profile()
    {
        var costs = new BucketCostModel(Model(Pow2, Pow2, p => 3 + (0.01 * p), (_, d) => 0.5 + (0.001 * d)));
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => Advisor.Advise(costs, new AdviceQuery([]))).Message,
            StringComparison.Ordinal);
        var ex = Assert.Throws<RequestOutOfRangeException>(() => Advisor.Advise(costs, new AdviceQuery([new TraceRequest(0, 3000, 100)])));
        Assert.Contains("request #1", ex.Message, StringComparison.Ordinal);
    }
}
