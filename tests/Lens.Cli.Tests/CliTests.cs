using System.Globalization;
using System.Text;
using System.Text.Json;
using Lens.Core;

namespace Lens.Cli.Tests;

public sealed class CliTests : IDisposable
{
    private static readonly string[] Buckets = ["--prefill-buckets", "128,256,512", "--decode-buckets", "128,256,512,1024"];
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    /// <summary>A noiseless step-function device: A = 20 + p/10 per prefill bucket, S = 1 + d/1000 per decode bucket.</summary>
    private static double E2e(BucketSet b, int i, int o)
    {
        var total = 20 + (b.Prefill[b.PrefillIndex(i)] / 10.0);
        for (var k = 1; k < o; k++)
        {
            total += 1 + (b.Decode[b.DecodeIndex(i + k)] / 1000.0);
        }

        return total;
    }

    private static readonly BucketSet Set = new([128, 256, 512], [128, 256, 512, 1024]);

    private void MeasurePlan(string planFile, string outFile)
    {
        var plan = LensCsv.ReadPlan(new StringReader(_lens.Read(planFile)), planFile).Rows;
        var sb = new StringBuilder("input_len,output_len,e2e_ms\n");
        foreach (var r in plan)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{r.InputLength},{r.OutputLength},{E2e(Set, r.InputLength, r.OutputLength):R}\n");
        }

        _lens.Write(outFile, sb.ToString());
    }

    [Fact]
    public void Plan_fit_predict_evaluate_end_to_end()
    {
        var plan = _lens.Run(["plan", .. Buckets, "--repeats", "2", "--seed", "7", "--out", "plan.csv"]);
        Assert.Equal(0, plan.ExitCode);
        Assert.StartsWith("bucket,input_len,output_len", _lens.Read("plan.csv"));
        Assert.Equal(16 + 1, _lens.Read("plan.csv").Trim().Split('\n').Length);

        MeasurePlan("plan.csv", "m.csv");
        var fit = _lens.Run(["fit", .. Buckets, "--measurements", "m.csv", "--out", "model.json"]);
        Assert.True(fit.ExitCode == 0, fit.Stderr);
        var model = ModelJson.Deserialize(_lens.Read("model.json"), "model.json");
        Assert.Equal(20 + 25.6, model.PrefillBuckets[1].AMs, 9);
        Assert.Equal(1.512, model.DecodeBuckets[2].StepMs, 9);

        var single = _lens.Run("predict", "--model", "model.json", "--input-len", "300", "--output-len", "400", "--json");
        Assert.Equal(0, single.ExitCode);
        using var doc = JsonDocument.Parse(single.Stdout);
        Assert.Equal(E2e(Set, 300, 400), doc.RootElement.GetProperty("e2eMs").GetDouble(), 6);
        Assert.Equal(["prefill-512", "decode-512", "decode-1024"],
            doc.RootElement.GetProperty("breakdown").EnumerateArray().Select(b => b.GetProperty("bucket").GetString()));

        Assert.Equal(0.95, doc.RootElement.GetProperty("intervalLevel").GetDouble());
        var human = _lens.Run("predict", "--model", "model.json", "--input-len", "300", "--output-len", "1");
        Assert.Contains("TPOT  - (O = 1: no decode step)", human.Stdout);
        Assert.Contains("(95% interval ", human.Stdout);

        var fit90 = _lens.Run(["fit", .. Buckets, "--measurements", "m.csv", "--out", "model90.json", "--level", "0.9"]);
        Assert.True(fit90.ExitCode == 0, fit90.Stderr);
        Assert.Contains("Intervals at 90%, calibrated on 16", fit90.Stdout);
        Assert.Contains("(90% interval ", _lens.Run("predict", "--model", "model90.json", "--input-len", "300", "--output-len", "9").Stdout);
        Assert.Contains("--level", _lens.Run(["fit", .. Buckets, "--measurements", "m.csv", "--out", "x.json", "--level", "1"]).Stderr);

        _lens.Write("pairs.csv", "input_len,output_len\n1,1\n129,100\n500,524\n");
        var batch = _lens.Run("predict", "--model", "model.json", "--pairs", "pairs.csv", "--out", "pred.csv");
        Assert.Equal(0, batch.ExitCode);
        var lines = _lens.Read("pred.csv").Trim().Split('\n');
        Assert.Equal(LensCsv.PredictionHeader, lines[0]);
        Assert.Equal(E2e(Set, 500, 524), double.Parse(lines[3].Split(',')[2], CultureInfo.InvariantCulture), 3);

        _lens.Write("heldout.csv", "input_len,output_len,e2e_ms\n" +
            string.Join('\n', new[] { (5, 300), (130, 126), (257, 700), (400, 10) }.Select(p =>
                string.Create(CultureInfo.InvariantCulture, $"{p.Item1},{p.Item2},{E2e(Set, p.Item1, p.Item2) * 1.01:R}"))));
        var eval = _lens.Run("evaluate", "--model", "model.json", "--measurements", "heldout.csv", "--profiling", "m.csv", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        using var table = JsonDocument.Parse(eval.Stdout);
        var results = table.RootElement.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(3, results.Length);
        Assert.Equal("LENS", results[0].GetProperty("predictor").GetString());
        Assert.Equal(100 * (1 - (1 / 1.01)), results[0].GetProperty("e2e").GetProperty("mean").GetDouble(), 6);

        var text = _lens.Run("evaluate", "--model", "model.json", "--measurements", "heldout.csv", "--profiling", "m.csv");
        Assert.Contains("smooth regression", text.Stdout);
        Assert.Contains("per-token linear", text.Stdout);
    }

    [Fact]
    public void Simulate_compares_deployments_on_a_trace()
    {
        _lens.Run(["plan", .. Buckets, "--out", "plan.csv"]);
        MeasurePlan("plan.csv", "m.csv");
        Assert.Equal(0, _lens.Run(["fit", .. Buckets, "--measurements", "m.csv", "--out", "model.json"]).ExitCode);
        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n0,100,100\n0,100,100\n");
        var r = _lens.Run("simulate", "--model", "model.json", "--trace", "trace.csv", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var result = doc.RootElement[0].GetProperty("result");
        var e2e = E2e(Set, 100, 100);
        Assert.Equal(2 * e2e, result.GetProperty("e2e").GetProperty("max").GetDouble(), 6); // the second waits for the first
        Assert.Equal(e2e, result.GetProperty("queueWait").GetProperty("max").GetDouble(), 6);

        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n0,100,100\n-3,1,1\n");
        r = _lens.Run("simulate", "--model", "model.json", "--trace", "trace.csv");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("trace.csv:3: column 'arrival_ms': '-3' is not a time in ms", r.Stderr);
    }

    [Fact]
    public void Presets_write_the_stacks_buckets()
    {
        var r = _lens.Run("plan", "--preset", "nxdi", "--max-context", "1024", "--seq-len", "2048", "--out", "p.csv", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal("P=128,256,512,1024 D=128,256,512,1024,2048 after-append", doc.RootElement.GetProperty("buckets").GetString());
    }

    [Fact]
    public void Engine_steps_times_every_batch_and_decode_bucket()
    {
        var r = _lens.Run("engine", "steps", "--profile", "tiny-batch", "--steps", "3", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal("tiny-batch", doc.RootElement.GetProperty("profile").GetString());
        var steps = doc.RootElement.GetProperty("steps").EnumerateArray().ToList();
        Assert.Equal(
            from b in new[] { 1, 2, 4 } from d in new[] { 16, 32, 64, 128 } select (b, d, 3),
            steps.Select(s => (s.GetProperty("batch").GetInt32(), s.GetProperty("decodeBucket").GetInt32(), s.GetProperty("steps").GetInt32())));
        Assert.Equal(3, doc.RootElement.GetProperty("prefills").GetArrayLength());
    }

    [Theory]
    [InlineData(new[] { "plan", "--out", "p.csv" }, "give both --prefill-buckets and --decode-buckets")]
    [InlineData(new[] { "engine", "steps", "--steps", "0" }, "--steps must be in 1..10000")]
    [InlineData(new[] { "plan", "--prefill-buckets", "128", "--decode-buckets", "128" }, "--out is required")]
    [InlineData(new[] { "plan", "--preset", "nxdi", "--out", "p.csv" }, "--preset nxdi needs --max-context and --seq-len")]
    [InlineData(new[] { "fit", "--prefill-buckets", "8", "--decode-buckets", "8", "--measurements", "m.csv", "--out", "x", "--statistic", "best" },
        "--statistic: statistic 'best' is not one of")]
    [InlineData(new[] { "predict", "--model", "m.json" }, "give either --input-len and --output-len, or --pairs with --out")]
    [InlineData(new[] { "frobnicate" }, "Unknown command 'frobnicate'")]
    [InlineData(new[] { "plan", "--repeats", "many" }, "many")]
    public void Usage_errors_exit_2_on_stderr(string[] args, string message)
    {
        var r = _lens.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr.ReplaceLineEndings(" ").Replace("  ", " ", StringComparison.Ordinal));
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void Bad_files_exit_1_and_name_file_line_and_column()
    {
        _lens.Write("m.csv", "input_len,output_len,e2e_ms\n1,1,10\n1,x,12\n");
        var r = _lens.Run(["fit", .. Buckets, "--measurements", "m.csv", "--out", "model.json"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("m.csv:3: column 'output_len': 'x' is not a whole number", r.Stderr);
        Assert.False(File.Exists(_lens.PathOf("model.json")));

        _lens.Write("m.csv", "input_len,output_len,e2e_ms\n1,1,10\n600,2,12\n");
        r = _lens.Run(["fit", .. Buckets, "--measurements", "m.csv", "--out", "model.json"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("m.csv:3: input length 600 is above the longest prefill bucket 512", r.Stderr);

        _lens.Write("m.csv", "input_len,output_len,e2e_ms\n1,1,10\n1,100,110\n");
        r = _lens.Run(["fit", .. Buckets, "--measurements", "m.csv", "--out", "model.json"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not enough data for prefill-256", r.Stderr);
        Assert.Contains("--allow-partial", r.Stderr);

        r = _lens.Run("predict", "--model", "missing.json", "--input-len", "1", "--output-len", "1");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--model file 'missing.json' does not exist", r.Stderr);
    }

    [Fact]
    public void Out_of_range_requests_are_refused_never_extrapolated()
    {
        _lens.Run(["plan", .. Buckets, "--out", "plan.csv"]);
        MeasurePlan("plan.csv", "m.csv");
        Assert.Equal(0, _lens.Run(["fit", .. Buckets, "--measurements", "m.csv", "--out", "model.json"]).ExitCode);

        var r = _lens.Run("predict", "--model", "model.json", "--input-len", "512", "--output-len", "513");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("input length 512 + output length 513 = 1025 is above the longest decode bucket 1024", r.Stderr);

        _lens.Write("pairs.csv", "input_len,output_len\n10,10\n0,5\n");
        r = _lens.Run("predict", "--model", "model.json", "--pairs", "pairs.csv", "--out", "pred.csv");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("pairs.csv:3: column 'input_len': 0 is out of range", r.Stderr);
        Assert.False(File.Exists(_lens.PathOf("pred.csv")));
    }
}
