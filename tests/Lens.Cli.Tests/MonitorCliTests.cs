using System.Globalization;
using System.Text;
using System.Text.Json;
using Lens.Core;

namespace Lens.Cli.Tests;

/// <summary><c>lens monitor</c> on files: a slowed cell of a simulated device is flagged after two windows, from CSV or OTLP JSON.</summary>
public sealed class MonitorCliTests : IDisposable
{
    private static readonly BucketSet Buckets = new([128, 256], [256, 512], DecodeConvention.AfterAppend, [1, 2, 4]);
    private static readonly BucketId Slowed = new(BucketKind.Decode, 512, 4);
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    private static DeploymentModel Model(double slow) => new(Buckets,
        [.. Buckets.Prefill.Select(p => new PrefillValues(p, 5 + (p * 0.02), 0.05, 4 + (p * 0.02), 0.05, double.NaN))],
        [.. Buckets.Batch.SelectMany(b => Buckets.Decode.Select(d =>
            new DecodeValues(d, (0.5 + (0.2 * b) + (d * 0.002)) * (new BucketId(BucketKind.Decode, d, b) == Slowed ? slow : 1), 0.005, b)))],
        RepeatStatistic.Min, 0.02);

    /// <summary>What the slowed device serves for a Poisson trace at about 60% of the profiled capacity (noise: one-sided, 2%).</summary>
    private static (TraceRequest Request, ServedRequest Served)[] Serve(int count)
    {
        var rng = new Random(7);
        var lengths = Enumerable.Range(0, count).Select(_ => (I: rng.Next(1, 257), O: rng.Next(16, 257))).ToArray();
        var capacity = count / (ServingSimulation.Simulate(Model(1), [.. lengths.Select(l => new TraceRequest(0, l.I, l.O))]).Requests.Max(r => r.FinishMs) / 1000);
        var t = 0.0;
        var trace = lengths.Select(l => new TraceRequest(t += -Math.Log(1 - rng.NextDouble()) / (0.6 * capacity) * 1000, l.I, l.O)).ToArray();
        var run = ServingSimulation.Simulate(Model(1.3), trace);
        return [.. trace.Select((r, n) =>
        {
            var slow = 1 + (0.02 * Math.Abs(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble())));
            var s = run.Requests[n];
            return (r, s with { FirstTokenMs = s.ArrivalMs + (s.TtftMs * slow), FinishMs = s.ArrivalMs + (s.E2eMs * slow) });
        })];
    }

    [Fact]
    public void A_slowed_cell_is_flagged_from_an_observed_csv_after_two_windows()
    {
        _lens.Write("model.json", ModelJson.Serialize(Model(1)));
        var csv = new StringBuilder("arrival_ms,input_len,output_len,ttft_ms,e2e_ms,tpot_ms,send_lag_ms,error\n");
        foreach (var (r, s) in Serve(3000))
        {
            csv.Append(CultureInfo.InvariantCulture, $"{r.ArrivalMs},{r.InputLength},{r.OutputLength},{s.TtftMs},{s.E2eMs},,0,\n");
        }

        csv.Append("99999999,5,5,,,,0,timed out\n");
        _lens.Write("measured.csv", csv.ToString());
        var run = _lens.Run("monitor", "--model", "model.json", "--observed", "measured.csv", "--window", "1000", "--json");
        Assert.True(run.ExitCode == 3, $"exit {run.ExitCode}: {run.Stderr}");
        using var doc = JsonDocument.Parse(run.Stdout);
        var windows = doc.RootElement.GetProperty("windows").EnumerateArray().ToArray();
        Assert.Equal(3, windows.Length);
        var flagged = windows[^1].GetProperty("cells").EnumerateArray().Where(c => c.GetProperty("flagged").GetBoolean()).ToArray();
        Assert.Equal(Slowed.ToString(), Assert.Single(flagged).GetProperty("cell").GetString());
        Assert.DoesNotContain(windows[0].GetProperty("cells").EnumerateArray(), c => c.GetProperty("flagged").GetBoolean()); // one window is not enough
        var estimated = flagged[0].GetProperty("estimatedMs").GetDouble();
        var truth = Model(1.3).StepMs(Buckets.BatchIndex(4), Buckets.DecodeIndex(512));
        Assert.InRange(estimated / truth, 0.9, 1.1);
    }

    [Fact]
    public void Otlp_json_lines_are_read_per_deployment_and_the_choice_is_named()
    {
        _lens.Write("model.json", ModelJson.Serialize(Model(1)));
        var lines = new StringBuilder();
        foreach (var chunk in Serve(600).Chunk(200))
        {
            lines.Append(Export("npu-0", "llama", chunk)).Append('\n').Append(Export("npu-1", "other", chunk.Take(3))).Append('\n');
        }

        _lens.Write("traces.json", lines.ToString());
        var ambiguous = _lens.Run("monitor", "--model", "model.json", "--otlp", "traces.json");
        Assert.Equal(1, ambiguous.ExitCode);
        Assert.Contains("several deployments (npu-0/llama, npu-1/other)", ambiguous.Stderr, StringComparison.Ordinal);

        var run = _lens.Run("monitor", "--model", "model.json", "--otlp", "traces.json", "--device", "npu-0", "--deployment", "llama", "--json");
        Assert.True(run.ExitCode is 0 or 3, run.Stderr);
        using var doc = JsonDocument.Parse(run.Stdout);
        Assert.Equal(600, doc.RootElement.GetProperty("windows")[0].GetProperty("requests").GetInt32());

        _lens.Write("bad.json", lines.ToString() + "{\"resourceSpans\": 5}\n");
        var bad = _lens.Run("monitor", "--model", "model.json", "--otlp", "bad.json", "--device", "npu-0");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("bad.json:7: 'resourceSpans' is not an array", bad.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--window", "5", "--window must be in 100..1000000")]
    [InlineData("--replicas", "0", "--replicas must be in 1..1024")]
    [InlineData("--consecutive", "0", "--consecutive must be in 1..100")]
    public void Bad_options_are_usage_errors(string option, string value, string message)
    {
        _lens.Write("model.json", ModelJson.Serialize(Model(1)));
        _lens.Write("obs.csv", "arrival_ms,input_len,output_len,ttft_ms,e2e_ms\n0,5,5,10,20\n");
        var run = _lens.Run("monitor", "--model", "model.json", "--observed", "obs.csv", option, value);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(message, run.Stderr + run.Stdout, StringComparison.Ordinal);
    }

    /// <summary>One OTLP JSON export line as a collector's file exporter writes it: spans of vLLM's llm_request shape.</summary>
    private static string Export(string device, string deployment, IEnumerable<(TraceRequest Request, ServedRequest Served)> requests)
    {
        static object Attr(string key, object value) => new
        {
            key,
            value = value switch
            {
                string s => (object)new { stringValue = s },
                int i => new { intValue = i.ToString(CultureInfo.InvariantCulture) },
                _ => new { doubleValue = (double)value },
            },
        };

        var spans = requests.Select(x => new
        {
            name = "llm_request",
            startTimeUnixNano = ((ulong)(1.7e18 + (x.Request.ArrivalMs * 1e6))).ToString(CultureInfo.InvariantCulture),
            attributes = new[]
            {
                Attr("gen_ai.usage.prompt_tokens", x.Request.InputLength), Attr("gen_ai.usage.completion_tokens", x.Request.OutputLength),
                Attr("gen_ai.latency.time_to_first_token", x.Served.TtftMs / 1000), Attr("gen_ai.latency.e2e", x.Served.E2eMs / 1000),
            },
        });
        return JsonSerializer.Serialize(new
        {
            resourceSpans = new[]
            {
                new
                {
                    resource = new { attributes = new[] { Attr("lens.device", device), Attr("lens.deployment", deployment) } },
                    scopeSpans = new[] { new { spans } },
                },
            },
        });
    }
}
