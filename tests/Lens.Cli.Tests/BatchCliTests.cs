using System.Globalization;
using System.Text;
using System.Text.Json;
using Lens.Core;
using Lens.Engine;

namespace Lens.Cli.Tests;

/// <summary>Batch buckets on the command line (plan, fit) and load replay against a live server.</summary>
public sealed class BatchCliTests : IDisposable
{
    private static readonly string[] Buckets = ["--prefill-buckets", "16,32", "--decode-buckets", "16,32,64"];
    private static readonly BucketSet Set = new([16, 32], [16, 32, 64], DecodeConvention.AfterAppend, [1, 2, 4]);
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    private static double Prefill(int p) => 10 + (p / 8.0);

    private static double Step(int batch, int edge) => 1 + (0.25 * batch) + (edge / 64.0);

    /// <summary>A noiseless batched device: every request of a group of b ends at b * A[pre(I)] + sum of S[b, dec(I + k)].</summary>
    private void MeasurePlan(string planFile, string outFile)
    {
        var plan = LensCsv.ReadPlan(new StringReader(_lens.Read(planFile)), planFile).Rows;
        var sb = new StringBuilder(LensCsv.BatchedMeasurementHeader + "\n");
        for (var g = 0; g < plan.Count; g++)
        {
            var r = plan[g];
            var a = Prefill(Set.Prefill[Set.PrefillIndex(r.InputLength)]);
            var end = r.Batch * a;
            for (var k = 1; k < r.OutputLength; k++)
            {
                end += Step(r.Batch, Set.Decode[Set.DecodeIndex(r.InputLength + k)]);
            }

            for (var p = 1; p <= r.Batch; p++)
            {
                sb.Append(CultureInfo.InvariantCulture, $"{r.Bucket},{r.InputLength},{r.OutputLength},{r.Batch},{g},{end:R},{p * a:R}\n");
            }
        }

        _lens.Write(outFile, sb.ToString());
    }

    [Fact]
    public void Plan_and_fit_with_batch_buckets_recover_every_step_cost()
    {
        var plan = _lens.Run(["plan", .. Buckets, "--batch-buckets", "1,2,4", "--out", "plan.csv"]);
        Assert.True(plan.ExitCode == 0, plan.Stderr);
        Assert.StartsWith(LensCsv.BatchedPlanHeader + "\n", _lens.Read("plan.csv"), StringComparison.Ordinal);
        Assert.Contains("18 groups (42 requests)", plan.Stdout); // 3 decode pairs per batch bucket; 1 + 2 + 4 requests per point pair
        Assert.Contains("per repeat and batch bucket", plan.Stdout);

        MeasurePlan("plan.csv", "m.csv");
        var fit = _lens.Run(["fit", .. Buckets, "--batch-buckets", "1,2,4", "--measurements", "m.csv", "--out", "model.json"]);
        Assert.True(fit.ExitCode == 0, fit.Stderr);
        Assert.Contains("decode-64-b4", fit.Stdout);
        var model = ModelJson.Deserialize(_lens.Read("model.json"), "model.json");
        Assert.Equal([1, 2, 4], model.Buckets.Batch.ToArray());
        Assert.Equal(9, model.DecodeBuckets.Count);
        Assert.All(model.DecodeBuckets, d => Assert.Equal(Step(d.Batch, d.Edge), d.StepMs, 9));
        Assert.All(model.PrefillBuckets, p => Assert.Equal(Prefill(p.Edge), p.AMs, 9));
    }

    [Fact]
    public void A_batch_rule_generates_the_buckets_and_batch_one_plans_are_unchanged()
    {
        var rule = _lens.Run(["plan", .. Buckets, "--batch-rule", "pow2", "--max-num-seqs", "8", "--out", "p8.csv", "--json"]);
        Assert.True(rule.ExitCode == 0, rule.Stderr);
        using var doc = JsonDocument.Parse(rule.Stdout);
        Assert.Equal([1, 2, 4, 8], doc.RootElement.GetProperty("batchBuckets").EnumerateArray().Select(e => e.GetInt32()));

        var single = _lens.Run(["plan", .. Buckets, "--out", "p1.csv"]);
        Assert.Equal(0, single.ExitCode);
        Assert.StartsWith(LensCsv.PlanHeader + "\n", _lens.Read("p1.csv"), StringComparison.Ordinal);
        Assert.Contains("Wrote 6 requests", single.Stdout);
    }

    [Theory]
    [InlineData("--batch-buckets", "4,2", "--batch-buckets: #2 is 2")]
    [InlineData("--batch-buckets", "1,x", "--batch-buckets: batch bucket #2 'x' is not an integer")]
    [InlineData("--batch-buckets", "0,2", "--batch-buckets: #1 is 0; expected distinct ascending sizes in 1..65536")]
    [InlineData("--batch-rule", "pow2", "--batch-rule pow2 needs --max-num-seqs N")]
    [InlineData("--max-num-seqs", "8", "--max-num-seqs, --batch-min and --batch-step go with --batch-rule")]
    public void Bad_batch_options_are_usage_errors_naming_the_option(string option, string value, string message)
    {
        var r = _lens.Run(["plan", .. Buckets, option, value, "--out", "p.csv"]);

        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.False(File.Exists(_lens.PathOf("p.csv")));
    }

    [Fact]
    public void Fit_refuses_a_partial_group_naming_its_line()
    {
        _lens.Run(["plan", .. Buckets, "--batch-buckets", "1,2,4", "--out", "plan.csv"]);
        MeasurePlan("plan.csv", "m.csv");
        var lines = _lens.Read("m.csv").Split('\n').ToList();
        var at = lines.FindIndex(l => l.Split(',') is { Length: 7 } c && c[3] == "4");
        lines.RemoveAt(at); // one request of a group of 4 lost
        _lens.Write("m.csv", string.Join('\n', lines));

        var fit = _lens.Run(["fit", .. Buckets, "--batch-buckets", "1,2,4", "--measurements", "m.csv", "--out", "model.json"]);

        Assert.Equal(1, fit.ExitCode);
        Assert.Contains($"m.csv:{at + 1}: column 'group': group", fit.Stderr);
        Assert.Contains("has 3 rows but batch 4", fit.Stderr);
        Assert.False(File.Exists(_lens.PathOf("model.json")));
    }

    [Fact]
    public async Task Replay_fires_a_trace_at_a_live_server_and_writes_rows_in_trace_order()
    {
        using var engine = ReferenceEngine.Create(EngineProfiles.Load("tiny"));
        await using var server = await EngineServer.StartAsync(engine, 0);
        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n40,20,5\n0,10,3\n20,5,1\n");
        _lens.Write("azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,12,4\n2023-11-16 18:15:46.6305900,6,2\n");

        var r = _lens.Run("replay", "--endpoint", server.BaseAddress.ToString(), "--model", "tiny", "--trace", "trace.csv", "--out", "measured.csv",
            "--token-id-max", "256", "--json");

        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(3, doc.RootElement.GetProperty("requests").GetInt32());
        Assert.Equal(0, doc.RootElement.GetProperty("failed").GetInt32());
        Assert.True(doc.RootElement.GetProperty("e2eMs").GetProperty("p50").GetDouble() > 0);
        var lines = _lens.Read("measured.csv").Trim().Split('\n');
        Assert.Equal("arrival_ms,input_len,output_len,ttft_ms,e2e_ms,tpot_ms,send_lag_ms,error", lines[0]);
        Assert.Equal(["40,20,5", "0,10,3", "20,5,1"], lines[1..].Select(l => string.Join(',', l.Split(',')[..3])));
        Assert.Equal("", lines[3].Split(',')[5]); // O = 1: no TPOT

        var azure = _lens.Run("replay", "--endpoint", server.BaseAddress.ToString(), "--trace", "azure.csv", "--out", "azure-out.csv",
            "--token-id-max", "256", "--time-scale", "0.5");
        Assert.True(azure.ExitCode == 0, azure.Stderr + azure.Stdout);
        Assert.Equal(["25,12,4", "0,6,2"], _lens.Read("azure-out.csv").Trim().Split('\n')[1..].Select(l => string.Join(',', l.Split(',')[..3])));
        Assert.Contains("Throughput", azure.Stdout);
    }

    [Fact]
    public void Replay_of_a_bad_trace_names_file_line_and_column()
    {
        _lens.Write("azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,12,4\n2023-11-16 18:15:47,0,2\n");

        var r = _lens.Run("replay", "--endpoint", "http://127.0.0.1:9/v1", "--trace", "azure.csv", "--out", "out.csv");

        Assert.Equal(1, r.ExitCode);
        Assert.Contains("azure.csv:3: column 'ContextTokens': 0 is out of range", r.Stderr);
        Assert.False(File.Exists(_lens.PathOf("out.csv")));

        _lens.Write("far.csv", "arrival_ms,input_len,output_len\n0,1,1\n20000000,1,1\n");
        var far = _lens.Run("replay", "--endpoint", "http://127.0.0.1:9/v1", "--trace", "far.csv", "--out", "out.csv", "--time-scale", "1000");
        Assert.Equal(1, far.ExitCode);
        Assert.Contains("far.csv:3: arrival 20000000 ms times --time-scale 1000 is beyond the longest replay", far.Stderr);
    }
}
