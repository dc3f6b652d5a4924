using System.Text.Json;
using Lens.Core;

namespace Lens.Cli.Tests;

public sealed class WhatIfCliTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    private void WriteModel(string name) => WriteModel(_lens, name);

    /// <summary>P = D = 128..1024 (powers of two), B = 1, 2, 4; A(p) = 3 + p / 100, S(B, D) = 0.5 + 0.1 B + D / 1000.</summary>
    internal static void WriteModel(LensProcess lens, string name)
    {
        int[] edges = [128, 256, 512, 1024];
        var buckets = new BucketSet(edges, edges, DecodeConvention.AfterAppend, [1, 2, 4]);
        var model = new DeploymentModel(buckets, [.. edges.Select(p => new PrefillValues(p, 3 + (p / 100.0), 0.01, double.NaN, 0, double.NaN))],
            [.. buckets.Batch.SelectMany(b => edges.Select(d => new DecodeValues(d, 0.5 + (0.1 * b) + (d / 1000.0), 0.001, b)))], RepeatStatistic.Min, 0.01);
        lens.Write(name, ModelJson.Serialize(model));
    }

    [Fact]
    public void Whatif_writes_a_predicted_model_that_predict_and_simulate_accept()
    {
        WriteModel("model.json");
        var run = _lens.Run("whatif", "--model", "model.json", "--prefill-buckets", "128,384,640,1024", "--decode-buckets", "256,640,1024,1536",
            "--out", "whatif.json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("leave-one-bucket-out", run.Stdout, StringComparison.Ordinal);
        var json = _lens.Read("whatif.json");
        var model = ModelJson.Deserialize(json, "whatif.json");
        Assert.Equal([1, 2, 4], model.Buckets.Batch.ToArray()); // the profile's batch buckets by default
        Assert.Equal(3 + 3.84, model.PrefillBuckets[1].AMs, 1e-6);
        using (var doc = JsonDocument.Parse(json))
        {
            var predicted = doc.RootElement.GetProperty("predicted");
            Assert.Equal("model.json", predicted.GetProperty("source").GetString());
            Assert.Equal("1 + L", predicted.GetProperty("prefill").GetProperty("form").GetString());
            Assert.True(predicted.GetProperty("decode").GetProperty("loboMape").GetDouble() < 1e-6);
        }

        var predict = _lens.Run("predict", "--model", "whatif.json", "--input-len", "300", "--output-len", "1000");
        Assert.True(predict.ExitCode == 0, predict.Stderr);
        var simulate = _lens.Run("simulate", "--model", "whatif.json", "--rate", "2", "--count", "50", "--json");
        Assert.True(simulate.ExitCode == 0, simulate.Stderr);
    }

    [Theory]
    [InlineData("--prefill-buckets", "256,128", "--decode-buckets", "1024", 2, "not ascending")]
    [InlineData("--prefill-buckets", "128,128", "--decode-buckets", "1024", 2, "appears twice")]
    [InlineData("--prefill-buckets", "", "--decode-buckets", "1024", 2, "empty")]
    [InlineData("--prefill-buckets", "128", "--decode-buckets", "1024,2048", 1, "--decode-buckets: decode bucket 2048")]
    [InlineData("--prefill-buckets", "128,1600", "--decode-buckets", "1700", 1, "--prefill-buckets: prefill bucket 1600")]
    public void Whatif_refuses_bad_lists_and_far_extrapolation(string o1, string v1, string o2, string v2, int exit, string message)
    {
        WriteModel("model.json");
        var run = _lens.Run("whatif", "--model", "model.json", o1, v1, o2, v2, "--out", "whatif.json");
        Assert.Equal(exit, run.ExitCode);
        Assert.Contains(message, run.Stderr, StringComparison.Ordinal);
        if (exit == 1)
        {
            Assert.Contains("allowed 1..1536", run.Stderr, StringComparison.Ordinal);
        }

        Assert.False(File.Exists(_lens.PathOf("whatif.json")));
    }

    [Fact]
    public void Whatif_refuses_a_batch_bucket_beyond_the_profiled_ones()
    {
        WriteModel("model.json");
        var run = _lens.Run("whatif", "--model", "model.json", "--prefill-buckets", "128", "--decode-buckets", "1024", "--batch-buckets", "1,8",
            "--out", "whatif.json");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("--batch-buckets: batch bucket 8 is above the largest profiled batch bucket 4 (allowed 1..4)", run.Stderr,
            StringComparison.Ordinal);
    }

    [Fact]
    public void Advise_writes_advice_and_its_plot_and_beats_the_current_buckets()
    {
        WriteModel("model.json");
        var lines = Enumerable.Range(0, 120).Select(n => $"{n * 200},{(n % 3 == 0 ? 700 : 90)},{(n % 2 == 0 ? 30 : 120)}");
        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n" + string.Join('\n', lines) + "\n");
        var run = _lens.Run("advise", "--model", "model.json", "--trace", "trace.csv", "--slo-ttft", "200", "--slo-tpot", "5",
            "--max-buckets", "3", "--target-rate", "20", "--out", "out/advice.json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.True(File.Exists(_lens.PathOf("out/advice.png")));
        using var doc = JsonDocument.Parse(_lens.Read("out/advice.json"));
        var advice = doc.RootElement.GetProperty("advice");
        var recommended = advice.GetProperty("recommended");
        Assert.True(recommended.GetProperty("meanE2eMs").GetDouble() < advice.GetProperty("current").GetProperty("meanE2eMs").GetDouble());
        Assert.Equal(96, recommended.GetProperty("prefill")[0].GetInt32()); // the short prompts (90) rounded up to 16
        Assert.Equal(3 * advice.GetProperty("frontier").GetArrayLength(), advice.GetProperty("batchSearch").GetArrayLength()); // x batch 1; 1,2; 1,2,4
        Assert.True(advice.GetProperty("replicas").GetProperty("replicas").GetInt32() >= 1);
        Assert.Empty(Directory.GetFiles(_lens.PathOf("out"), "*.tmp-*"));
    }

    [Fact]
    public void Advise_refuses_empty_traces_lengths_beyond_the_profile_and_bad_options()
    {
        WriteModel("model.json");
        _lens.Write("empty.csv", "arrival_ms,input_len,output_len\n");
        var empty = _lens.Run("advise", "--model", "model.json", "--trace", "empty.csv", "--out", "advice.json");
        Assert.Equal(1, empty.ExitCode);
        Assert.Contains("empty.csv: the trace has no requests", empty.Stderr, StringComparison.Ordinal);

        _lens.Write("long.csv", "arrival_ms,input_len,output_len\n0,100,10\n5,1600,10\n");
        var beyond = _lens.Run("advise", "--model", "model.json", "--trace", "long.csv", "--out", "advice.json");
        Assert.Equal(1, beyond.ExitCode);
        Assert.Contains("long.csv:3:", beyond.Stderr, StringComparison.Ordinal);
        Assert.Contains("prompt at most 1536", beyond.Stderr, StringComparison.Ordinal);

        var usage = _lens.Run("advise", "--model", "model.json", "--rate", "2", "--out", "advice.json");
        Assert.Equal(2, usage.ExitCode);
        Assert.Contains("--input-dist", usage.Stderr, StringComparison.Ordinal);
        var budget = _lens.Run("advise", "--model", "model.json", "--rate", "2", "--input-dist", "fixed:10", "--output-dist", "fixed:10",
            "--max-buckets", "0", "--out", "advice.json");
        Assert.Equal(2, budget.ExitCode);
        Assert.Contains("--max-buckets must be in 1..32", budget.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_lens.PathOf("advice.json")));
    }

    [Fact]
    public void Advise_with_a_synthetic_workload_prints_the_table()
    {
        WriteModel("model.json");
        var run = _lens.Run("advise", "--model", "model.json", "--rate", "5", "--input-dist", "uniform:16-400", "--output-dist", "uniform:2-200",
            "--count", "200", "--max-buckets", "2", "--out", "advice.json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("recommended", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("current", run.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Advise_marks_a_budget_the_workload_overloads()
    {
        // One bucket of 912 pads every prompt (A about 12 ms) and every step (S about 1.5 ms): 100 tokens take over 150 ms, and one
        // request arrives every 50 ms.
        WriteModel("model.json");
        var lines = Enumerable.Range(0, 200).Select(n => $"{n * 50},{(n % 10 == 0 ? 900 : 50)},100");
        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n" + string.Join('\n', lines) + "\n");
        var run = _lens.Run("advise", "--model", "model.json", "--trace", "trace.csv", "--max-buckets", "2", "--batch-buckets", "1",
            "--out", "advice.json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("overloaded", run.Stdout, StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(_lens.Read("advice.json"));
        Assert.True(doc.RootElement.GetProperty("advice").GetProperty("frontier")[0].GetProperty("overloaded").GetBoolean());
        Assert.True(new FileInfo(_lens.PathOf("advice.png")).Length > 10_000);
    }
}

