using System.Globalization;
using System.Text.Json;
using Lens.Core;
using Lens.Engine;
using Lens.Testing;

namespace Lens.Cli.Tests;

/// <summary><c>lens demo --serving</c> end to end on the tiny batched engine, and the engine's scheduler against the serving simulation.</summary>
public sealed class ServingDemoTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    /// <summary>Every policy of the engine: its profile is planned, fitted and simulated under that policy.</summary>
    [Theory]
    [InlineData("tiny-batch", "prefill-first", "1,2,4")]
    [InlineData("tiny-chunked", "chunked", null)]
    [InlineData("tiny-paged", "prefill-first paged", null)]
    public void Serving_demo_runs_end_to_end_and_its_table_follows_from_its_files(string engine, string policy, string? batch)
    {
        var r = _lens.Run("demo", "--serving", "--engine", engine, "--requests", "12", "--repeats", "2", "--loads", "0.3,0.85",
            "--out-dir", "out", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        var model = ModelJson.Deserialize(_lens.Read("out/model.json"), "model.json");
        Assert.Equal(policy, model.Policy.Name);
        var expectedProfile = EngineProfiles.Load(engine);
        Assert.Equal(expectedProfile.EffectivePolicy, model.Policy);
        if (batch is not null)
        {
            Assert.True(model.IsComplete);
            Assert.Equal(batch, string.Join(',', model.Buckets.Batch.ToArray()));
        }
        Assert.True(root.GetProperty("capacityPerSecond").GetDouble() > 0);

        var loads = root.GetProperty("loads").EnumerateArray().ToArray();
        Assert.Equal([0.3, 0.85], loads.Select(l => l.GetProperty("fraction").GetDouble()));
        foreach (var load in loads)
        {
            var name = ((int)Math.Round(load.GetProperty("fraction").GetDouble() * 100)).ToString(CultureInfo.InvariantCulture);
            Assert.Equal(12, load.GetProperty("requests").GetInt32());
            var trace = LensCsv.ReadTrace(new StringReader(_lens.Read($"out/trace-{name}.csv")), "trace").Rows;
            Assert.Equal(12, trace.Count);
            var figures = load.GetProperty("figures").EnumerateArray().ToArray();

            // Predicted figures: the model file and the trace file reproduce them exactly with the serving simulation.
            var predicted = ServingFigures.Of(ServingSimulation.Simulate(model, trace)).Named();
            Assert.Equal(predicted.Select(f => f.Name), figures.Select(f => f.GetProperty("figure").GetString()));
            Assert.Equal(predicted.Select(f => f.Value), figures.Select(f => f.GetProperty("predicted").GetDouble()));
            Assert.Equal(12, File.ReadAllLines(_lens.PathOf($"out/predicted-{name}.csv")).Length - 1);

            // Measured figures (and the twin's) follow from the measured rows, 12 each, written to 4 decimals.
            foreach (var (file, column) in new[] { ($"measured-{name}.csv", "measured"), ($"measured-{name}-twin.csv", "twin") })
            {
                var rows = ReadMeasured(_lens.Read($"out/{file}"));
                Assert.Equal(12, rows.Count);
                var expected = ServingFigures.Of(rows).Named();
                foreach (var (f, e) in figures.Zip(expected))
                {
                    Assert.Equal(e.Value, f.GetProperty(column).GetDouble(), 1e-3 + (1e-4 * e.Value));
                }
            }

            // Each verdict is the stated rule on the printed figures.
            foreach (var f in figures)
            {
                var (m, t, p) = (f.GetProperty("measured").GetDouble(), f.GetProperty("twin").GetDouble(), f.GetProperty("predicted").GetDouble());
                Assert.Equal(Math.Abs(t - m) / m, f.GetProperty("noiseFloor").GetDouble(), 1e-12);
                var least = load.GetProperty("fraction").GetDouble() <= 0.6 ? 0.05 : 0.10;
                Assert.Equal(Math.Max(least, 2 * Math.Abs(t - m) / m), f.GetProperty("goal").GetDouble(), 1e-12);
                Assert.Equal(Math.Abs(p - m) / m <= Math.Max(least, 2 * Math.Abs(t - m) / m), f.GetProperty("met").GetBoolean());
            }
        }

        // Two rounds of the grouped plan (one before each replay pass), every request one row.
        var profiled = LensCsv.ReadMeasurements(new StringReader(_lens.Read("out/profile.csv")), "profile.csv").Rows;
        var plan = model.Policy.IsDefault ? ProfilingPlanner.Create(model.Buckets, new PlanOptions(1, null, 1)).Rows
            : PolicyPlanner.Create(model.Buckets, model.Policy, new PlanOptions(1, null, 1)).Rows;
        Assert.Equal(2 * plan.Sum(p => p.Batch), profiled.Count);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(_lens.PathOf("out/serving.png")).Take(4));
    }

    [Theory]
    [InlineData("--direct", "--direct")]
    [InlineData("--loads 0.3,x", "--loads '0.3,x': 'x'")]
    [InlineData("--loads 0", "in (0, 2]")]
    [InlineData("--input uniform:5-1", "--input 'uniform:5-1'")]
    [InlineData("--duration 0", "--duration")]
    public void Serving_demo_refuses_bad_options_as_usage_errors(string options, string named)
    {
        var r = _lens.Run(["demo", "--serving", .. options.Split(' ')]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(named, r.Stderr + r.Stdout);
        Assert.False(Directory.Exists(_lens.PathOf("lens-demo-serving")));
    }

    /// <summary>
    /// A trace in three stages: the first released at once (more requests than max_num_seqs), the others submitted while the engine
    /// is held between two iterations with sequences in flight; lengths cross decode edges and finish at different steps. The
    /// engine's recorded admissions and (B, D) steps, costed with a model's A and S (binary fractions, so every sum is exact), give
    /// every request the same start, first token and finish as <see cref="ServingSimulation"/> with that model, each stage arriving
    /// at the virtual time of the iteration boundary where the engine was held.
    /// </summary>
    [Fact]
    public async Task Engine_scheduler_and_serving_simulation_agree_exactly_on_the_order_of_events()
    {
        using var engine = ReferenceEngine.Create(EngineProfiles.Load("tiny-batch"));
        var buckets = engine.Buckets.WithBatch(engine.BatchBuckets);
        var stages = StagedSubmission.Stages;
        var requests = stages.SelectMany(q => q).ToArray();
        var (results, steps, held) = await StagedSubmission.RunAsync(engine, stages);
        Assert.Equal(steps.Count, (int)(steps[^1].Index - steps[0].Index + 1));

        // A model with distinct, exactly representable costs: A[p] = 8 (p + 1), S[b, d] = 1 + b / 2 + d / 4 (indices).
        var prefill = buckets.Prefill.Select((edge, p) => new PrefillValues(edge, 8.0 * (p + 1), 0, 8.0 * (p + 1), 0, 0)).ToArray();
        var decode = buckets.Batch.SelectMany((b, bi) => buckets.Decode.Select((d, di) => new DecodeValues(d, 1 + (bi / 2.0) + (di / 4.0), 0, b)))
            .ToArray();
        var model = new DeploymentModel(buckets, prefill, decode, RepeatStatistic.Min, 0);
        double StepCost(BatchStepTrace s) => model.StepMs(buckets.Batch.IndexOf(s.Batch), buckets.Decode.IndexOf(s.Bucket.Edge));

        // The engine's events on a virtual clock: before step i, the prefills of the requests whose first step is i (in submission
        // order); a stage held before step i arrived when step i - 1 ended.
        var start = new double[requests.Length];
        var first = new double[requests.Length];
        var finish = new double[requests.Length];
        var arrival = new double[requests.Length];
        var stageOf = stages.SelectMany((stage, k) => stage.Select(_ => k)).ToArray();
        var now = 0.0;
        foreach (var step in steps)
        {
            for (var n = 0; n < requests.Length; n++)
            {
                arrival[n] = held[stageOf[n]] == step.Index ? now : arrival[n];
            }

            for (var n = 0; n < requests.Length; n++)
            {
                if (results[n].Steps[0].Index == step.Index)
                {
                    start[n] = now;
                    now += model.PrefillMs(buckets.PrefillIndex(requests[n].I));
                    first[n] = now;
                }
            }

            now += StepCost(step);
            for (var n = 0; n < requests.Length; n++)
            {
                if (results[n].Steps[^1].Index == step.Index)
                {
                    finish[n] = now;
                }
            }
        }

        var simulated = ServingSimulation.Simulate(model, [.. requests.Select((q, n) => new TraceRequest(arrival[n], q.I, q.O))]);
        Assert.Equal(start, simulated.Requests.Select(s => s.StartMs));
        Assert.Equal(first, simulated.Requests.Select(s => s.FirstTokenMs));
        Assert.Equal(finish, simulated.Requests.Select(s => s.FinishMs));
        Assert.Equal(steps.Count, simulated.DecodeSteps);
        Assert.True(arrival.Distinct().Count() == 3, $"each stage arrives at its own time: held before steps {string.Join(", ", held)} of {steps[0].Index}..{steps[^1].Index}, arrivals {string.Join(", ", arrival)}");
        Assert.Contains(steps, s => s.Rows < s.Batch);                        // padded rows were costed
        Assert.True(steps.Select(s => s.Bucket.Edge).Distinct().Count() >= 2); // and D changed
    }

    /// <summary>Rows of a measured CSV (<c>arrival_ms,input_len,output_len,ttft_ms,e2e_ms,...</c>).</summary>
    private static List<ServedLatency> ReadMeasured(string csv)
    {
        var lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("arrival_ms,input_len,output_len,ttft_ms,e2e_ms", lines[0]);
        return [.. lines.Skip(1).Select(line => line.Split(',')).Select(c => new ServedLatency(
            double.Parse(c[0], CultureInfo.InvariantCulture), int.Parse(c[2], CultureInfo.InvariantCulture),
            double.Parse(c[3], CultureInfo.InvariantCulture), double.Parse(c[4], CultureInfo.InvariantCulture)))];
    }
}
