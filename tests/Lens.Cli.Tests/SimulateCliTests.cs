using System.Text.Json;
using Lens.Core;

namespace Lens.Cli.Tests;

public sealed class SimulateCliTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    /// <summary>P = 64; D = 64, 128; B = 1, 2, 4; A = 10; S[b, d] = b + d / 64.</summary>
    private void WriteBatchedModel(string name)
    {
        var buckets = new BucketSet([64], [64, 128], DecodeConvention.AfterAppend, [1, 2, 4]);
        var model = new DeploymentModel(buckets, [new PrefillValues(64, 10, 0, double.NaN, 0, double.NaN)],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, b + (d / 64.0), 0, b)))], RepeatStatistic.Min, 0);
        _lens.Write(name, ModelJson.Serialize(model));
    }

    [Fact]
    public void Simulate_writes_each_trace_rows_prediction_in_the_traces_order()
    {
        WriteBatchedModel("model.json");
        // Out of arrival order on purpose: the output keeps the file's order. The two at t = 0 batch at B = 2 (see the core tests).
        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n1000,5,1\n0,5,3\n0,5,6\n");
        var run = _lens.Run("simulate", "--model", "model.json", "--trace", "trace.csv", "--out", "pred.csv", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        var lines = _lens.Read("pred.csv").Trim().Split('\n');
        Assert.Equal("arrival_ms,input_len,output_len,ttft_ms,e2e_ms,tpot_ms", lines[0]);
        Assert.Equal("1000,5,1,10,10,", lines[1]);     // alone, O = 1: no TPOT
        Assert.Equal("0,5,3,10,26,8", lines[2]);
        Assert.Equal("0,5,6,20,32,2.4", lines[3]);
        using var doc = JsonDocument.Parse(run.Stdout);
        var result = doc.RootElement[0].GetProperty("result");
        Assert.Equal(4, result.GetProperty("maxNumSeqs").GetInt32());
        Assert.Equal(3, result.GetProperty("requests").GetInt32());

        var one = _lens.Run("simulate", "--model", "model.json", "--trace", "trace.csv", "--out", "pred1.csv", "--max-num-seqs", "1");
        Assert.True(one.ExitCode == 0, one.Stderr);
        Assert.Equal("0,5,6,24,34,2", _lens.Read("pred1.csv").Trim().Split('\n')[3]); // admitted when the other ends at 14
    }

    [Fact]
    public void Simulate_reads_a_chunked_or_paged_policy_from_the_model_file()
    {
        // Chunked: budget 8, token buckets 4, 8, context buckets 8, 16, 32, max_num_seqs 2; C[t, k] = t + k / 8.
        var chunked = new BucketSet([8], [8, 16, 32], DecodeConvention.AfterAppend, [4, 8]);
        _lens.Write("chunked.json", ModelJson.Serialize(new DeploymentModel(chunked, [new PrefillValues(8, double.NaN, 0, double.NaN, 0, double.NaN)],
            [.. chunked.Batch.SelectMany(t => chunked.Decode.Select(k => new DecodeValues(k, t + (k / 8.0), 0, t)))], RepeatStatistic.Min, 0)
            .WithPolicy(SchedulingPolicy.ChunkedPrefill(8, [4, 8], 2))));
        // Steps: (t8, k8) 9 ms; (t8, k16) 10 ms, first tokens of rows 1 and 2; (t4, k16) 6 ms, row 2 done; (t4, k16) 6 ms, rows 1 and 3 done.
        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n0,10,3\n0,5,2\n0,3,1\n");
        var run = _lens.Run("simulate", "--model", "chunked.json", "--trace", "trace.csv", "--out", "chunked.csv");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal(["0,10,3,19,31,6", "0,5,2,19,25,6", "0,3,1,31,31,"], _lens.Read("chunked.csv").Trim().Split('\n').Skip(1));

        // Paged: blocks of 4 tokens, block buckets 2, 4, 8 (KV capacity 32 tokens); A = 10; S[b, blocks] = b + blocks.
        var paged = BucketSet.Paged([8], [2, 4, 8], DecodeConvention.AfterAppend, [1, 2, 4]);
        _lens.Write("paged.json", ModelJson.Serialize(new DeploymentModel(paged, [new PrefillValues(8, 10, 0, double.NaN, 0, double.NaN)],
            [.. paged.Batch.SelectMany(b => paged.Decode.Select(k => new DecodeValues(k, b + k, 0, b)))], RepeatStatistic.Min, 0)
            .WithPolicy(SchedulingPolicy.PagedDecode(4))));
        // (4, 6): prefill 10, lengths 5..8 at 2 blocks (3 ms each), length 9 at 3 blocks, bucket 4 (5 ms).
        _lens.Write("one.csv", "arrival_ms,input_len,output_len\n0,4,6\n");
        run = _lens.Run("simulate", "--model", "paged.json", "--trace", "one.csv", "--out", "paged.csv");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal("0,4,6,10,27,3.4", _lens.Read("paged.csv").Trim().Split('\n')[1]);

        _lens.Write("long.csv", "arrival_ms,input_len,output_len\n0,4,6\n0,8,25\n");
        var bad = _lens.Run("simulate", "--model", "paged.json", "--trace", "long.csv", "--out", "long-pred.csv");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("long.csv:3", bad.Stderr);
        Assert.Contains("allowed I + O <= 32", bad.Stderr);
        var tooMany = _lens.Run("simulate", "--model", "chunked.json", "--trace", "trace.csv", "--max-num-seqs", "4");
        Assert.Equal(1, tooMany.ExitCode);
        Assert.Contains("allowed 1..2", tooMany.Stderr);
    }

    [Fact]
    public void A_static_batch_prefills_in_turn_and_ends_together()
    {
        WriteBatchedModel("model.json");
        var run = _lens.Run("predict", "--model", "model.json", "--input-len", "5", "--output-len", "11", "--static-batch", "3", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var doc = JsonDocument.Parse(run.Stdout);
        // Prefills at 10, 20, 30; then 10 steps at B = bat(3) = 4, decode-64: S = 5.
        Assert.Equal([10.0, 20, 30], doc.RootElement.GetProperty("ttftMs").EnumerateArray().Select(e => e.GetDouble()));
        Assert.All(doc.RootElement.GetProperty("e2eMs").EnumerateArray(), e => Assert.Equal(80, e.GetDouble(), 9));
        var bad = _lens.Run("predict", "--model", "model.json", "--input-len", "5", "--output-len", "11", "--static-batch", "0");
        Assert.Equal(2, bad.ExitCode);
    }

    [Fact]
    public void Bad_traces_and_batch_limits_are_named_and_nothing_is_written()
    {
        WriteBatchedModel("model.json");
        _lens.Write("bad.csv", "arrival_ms,input_len,output_len\n0,5,3\n10,100,2\n");
        var bad = _lens.Run("simulate", "--model", "model.json", "--trace", "bad.csv", "--out", "pred.csv");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("bad.csv:3", bad.Stderr);
        Assert.Contains("allowed 1..64", bad.Stderr);
        Assert.False(File.Exists(_lens.PathOf("pred.csv")));

        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n0,5,3\n");
        var tooMany = _lens.Run("simulate", "--model", "model.json", "--trace", "trace.csv", "--max-num-seqs", "8");
        Assert.Equal(1, tooMany.ExitCode);
        Assert.Contains("allowed 1..4", tooMany.Stderr);

        var dist = _lens.Run("simulate", "--model", "model.json", "--rate", "5", "--input-dist", "zipf:3");
        Assert.NotEqual(0, dist.ExitCode);
        Assert.Contains("--input-dist", dist.Stderr);
    }

    [Fact]
    public void Generated_bursty_workloads_are_deterministic_and_report_goodput()
    {
        WriteBatchedModel("model.json");
        string[] args = ["simulate", "--model", "model.json", "--rate", "50", "--count", "300", "--burstiness", "3", "--input-dist", "uniform:1-64",
            "--output-dist", "lognormal:20,0.5", "--seed", "4", "--slo-ttft", "50", "--slo-tpot", "10", "--json"];
        var a = _lens.Run(args);
        var b = _lens.Run(args);
        Assert.True(a.ExitCode == 0, a.Stderr);
        Assert.Equal(a.Stdout, b.Stdout);
        using var doc = JsonDocument.Parse(a.Stdout);
        var result = doc.RootElement[0].GetProperty("result");
        var goodput = result.GetProperty("goodputPerSecond").GetDouble();
        var attainment = result.GetProperty("sloAttainment").GetDouble();
        Assert.Equal(attainment * result.GetProperty("requestsPerSecond").GetDouble(), goodput, 6);
        Assert.InRange(attainment, 0, 1);
    }

    [Fact]
    public void A_negative_or_half_slo_is_refused_by_its_option()
    {
        WriteBatchedModel("model.json");
        var negative = _lens.Run("simulate", "--model", "model.json", "--rate", "5", "--slo-ttft", "-5", "--slo-tpot", "10");
        Assert.Equal(2, negative.ExitCode);
        Assert.Contains("--slo-ttft must be a positive number of ms; got -5", negative.Stdout + negative.Stderr, StringComparison.Ordinal);
        var half = _lens.Run("simulate", "--model", "model.json", "--rate", "5", "--slo-tpot", "10");
        Assert.Equal(2, half.ExitCode);
        Assert.Contains("give --slo-ttft and --slo-tpot together", half.Stdout + half.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Generated_requests_longer_than_a_model_are_clamped_into_it_and_counted_per_model()
    {
        WriteBatchedModel("model.json");
        string[] args = ["simulate", "--model", "model.json", "--rate", "5", "--count", "200", "--input-dist", "uniform:1-100", "--output-dist", "fixed:10"];
        var run = _lens.Run(args);
        Assert.True(run.ExitCode == 0, run.Stderr);
        var expected = Workload.Fit(new BucketSet([64], [64, 128]), new Workload
        {
            RequestsPerSecond = 5, Count = 200, InputDist = "uniform:1-100", OutputDist = "fixed:10",
        }.Draw(new BucketSet([64], [64, 128])));
        Assert.InRange(expected.Clamped, 1, 199);
        static string Words(string text) => System.Text.RegularExpressions.Regex.Replace(text, @"\s+", " ");
        Assert.Contains(Words($"model.json: {expected.ClampNote}"), Words(run.Stdout), StringComparison.Ordinal);
    }
}
