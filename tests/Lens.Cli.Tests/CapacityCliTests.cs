using System.Text.Json;
using Lens.Core;

namespace Lens.Cli.Tests;

public sealed class CapacityCliTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    /// <summary>One request at a time (batch [1]); P = 64; D = 64, 128; A = <paramref name="prefill"/>, S = <paramref name="step"/>.</summary>
    private void WriteModel(string name, double prefill, double step, DeploymentLayout? layout = null)
    {
        var buckets = new BucketSet([64], [64, 128], DecodeConvention.AfterAppend);
        var model = new DeploymentModel(buckets, [new PrefillValues(64, prefill, 0, double.NaN, 0, double.NaN)],
            [.. buckets.Decode.Select(d => new DecodeValues(d, step, 0))], RepeatStatistic.Min, 0);
        _lens.Write(name, ModelJson.Serialize(layout is null ? model : model.WithLayout(layout)));
    }

    [Fact]
    public void Capacity_finds_the_fewest_replicas_per_layout_marks_the_cheapest_and_writes_the_contracts_json_and_plot()
    {
        // The hand-computed case of the core tests: 8 requests (I = 5, O = 2) at 0, TTFT <= 11 for all. tp1 (A = 10, S = 2) needs 8
        // replicas of 1 chip, tp2 (A = 5, S = 0.5) 4 of 2: 8 chips each, 8 per hour at 1 per chip-hour; tp2 is faster, so cheapest.
        WriteModel("tp1.json", 10, 2);
        WriteModel("tp2.json", 5, 0.5);
        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n" + string.Concat(Enumerable.Repeat("0,5,2\n", 8)));
        var run = _lens.Run("capacity", "--models", "tp1.json", "tp2.json", "--trace", "trace.csv", "--slo-ttft", "11", "--slo-tpot", "40",
            "--attainment", "1", "--chips", "1,2", "--price-per-chip-hour", "1.0", "--routing", "shared", "--out", "capacity.json",
            "--plot", "capacity.png", "--max-replicas", "16");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("cheapest", run.Stdout);
        using var doc = JsonDocument.Parse(_lens.Read("capacity.json"));
        var c = doc.RootElement.GetProperty("candidates");
        Assert.Equal("tp1.json", c[0].GetProperty("model").GetString());
        Assert.Equal(8, c[0].GetProperty("replicas").GetInt32());
        Assert.Equal(4, c[1].GetProperty("replicas").GetInt32());
        Assert.Equal(8, c[1].GetProperty("chips").GetInt32());
        Assert.Equal(8.0, c[1].GetProperty("costPerHour").GetDouble());
        Assert.True(c[1].GetProperty("costPerMillionOutputTokens").GetDouble() > 0);
        Assert.Equal(1.0, c[1].GetProperty("attainment").GetDouble());
        Assert.Equal(10.5, c[1].GetProperty("ttftP90Ms").GetDouble(), 9);
        foreach (var field in new[] { "tpotP90Ms", "e2eP90Ms" })
        {
            Assert.True(c[1].GetProperty(field).GetDouble() > 0);
        }

        Assert.False(c[0].GetProperty("cheapest").GetBoolean());
        Assert.True(c[1].GetProperty("cheapest").GetBoolean());
        Assert.True(c[0].GetProperty("meets").GetBoolean());
        var png = File.ReadAllBytes(_lens.PathOf("capacity.png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png.Take(4));

        // The same with --json on stdout, and a limit tp1 cannot reach: meets false with the reason.
        var limited = _lens.Run("capacity", "--models", "tp1.json", "--models", "tp2.json", "--trace", "trace.csv", "--slo-ttft", "11",
            "--slo-tpot", "40", "--attainment", "1", "--chips", "1,2", "--max-replicas", "5", "--json", "--no-headroom");
        Assert.True(limited.ExitCode == 0, limited.Stderr);
        using var json = JsonDocument.Parse(limited.Stdout);
        var first = json.RootElement.GetProperty("candidates")[0];
        Assert.False(first.GetProperty("meets").GetBoolean());
        Assert.Equal(5, first.GetProperty("replicas").GetInt32());
        Assert.Contains("even 5 replica(s)", first.GetProperty("reason").GetString());
        Assert.Equal(JsonValueKind.Null, first.GetProperty("costPerHour").ValueKind); // no price given
        Assert.Equal("tp2.json", json.RootElement.GetProperty("cheapest").GetString());
    }

    [Fact]
    public void The_inverse_gives_the_largest_rate_a_fleet_meets_and_chips_come_from_the_model_file()
    {
        WriteModel("tp2.json", 5, 0.5, new DeploymentLayout(2, "npu-x", 1.5));
        var run = _lens.Run("capacity", "--models", "tp2.json", "--rate", "200", "--count", "2000", "--output-dist", "uniform:1-20",
            "--input-dist", "uniform:1-60", "--slo-ttft", "50", "--slo-tpot", "2", "--json", "--no-headroom");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var plan = JsonDocument.Parse(run.Stdout);
        var c = plan.RootElement.GetProperty("candidates")[0];
        Assert.Equal(2, c.GetProperty("chipsPerReplica").GetInt32());
        Assert.Equal("npu-x", c.GetProperty("deviceKind").GetString());
        var replicas = c.GetProperty("replicas").GetInt32();
        Assert.Equal(replicas * 2 * 1.5, c.GetProperty("costPerHour").GetDouble(), 9);

        // The chosen fleet meets a rate at least the workload's; one replica fewer meets less than it.
        double MaxRate(int n)
        {
            var inverse = _lens.Run("capacity", "--models", "tp2.json", "--rate", "200", "--count", "2000", "--output-dist", "uniform:1-20",
                "--input-dist", "uniform:1-60", "--slo-ttft", "50", "--slo-tpot", "2", "--json", "--replicas", n.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(inverse.ExitCode == 0, inverse.Stderr);
            using var doc = JsonDocument.Parse(inverse.Stdout);
            return doc.RootElement.GetProperty("candidates")[0].GetProperty("scale").GetDouble();
        }

        Assert.True(MaxRate(replicas) >= 1);
        if (replicas > 1)
        {
            Assert.True(MaxRate(replicas - 1) < 1);
        }

        var conflict = _lens.Run("capacity", "--models", "tp2.json", "--rate", "200", "--count", "100", "--slo-ttft", "50", "--slo-tpot", "2",
            "--chips", "4");
        Assert.Equal(1, conflict.ExitCode);
        Assert.Contains("--chips gives 4 chips for tp2.json, whose model file says 2", conflict.Stderr);
    }

    [Fact]
    public void Help_lists_the_shared_workload_options_and_a_generated_workload_is_clamped_into_every_candidate_with_the_count()
    {
        var help = _lens.Run("capacity", "--help");
        Assert.True(help.ExitCode == 0, help.Stderr);
        foreach (var option in new[] { "--trace", "--rate", "--input-dist", "--output-dist", "--seed", "--slo-ttft", "--slo-tpot", "--attainment" })
        {
            Assert.Contains(option, help.Stdout);
        }

        // Prompts up to 100 against buckets serving at most 64: the draws are clamped, counted, and the plan still runs.
        WriteModel("tp1.json", 10, 2);
        WriteModel("tp2.json", 5, 0.5);
        var run = _lens.Run("capacity", "--models", "tp1.json", "tp2.json", "--rate", "20", "--count", "200", "--input-dist", "uniform:1-100",
            "--output-dist", "fixed:4", "--slo-ttft", "200", "--slo-tpot", "10", "--no-headroom");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Matches(@"\d+ of 200 requests were clamped into the buckets \(prompt <= 64, I \+ O <= 128\)", run.Stdout);
    }

    [Theory]
    [InlineData("--attainment", "1.5", "--attainment must be in (0, 1]")]
    [InlineData("--max-replicas", "0", "--max-replicas must be in 1..4096")]
    [InlineData("--routing", "random", "--routing must be shared, round-robin or least-outstanding")]
    [InlineData("--chips", "1,2", "--chips must give one whole number in 1..4096 per model (1)")]
    [InlineData("--slo-tpot", "-1", "--slo-ttft and --slo-tpot must be in (0, 3600000] ms")]
    [InlineData("--price-per-chip-hour", "-2", "--price-per-chip-hour must be in 0..1000000")]
    public void Bad_options_are_usage_errors_naming_the_option_and_its_range(string option, string value, string message)
    {
        WriteModel("tp1.json", 10, 2);
        var args = new List<string> { "capacity", "--models", "tp1.json", "--rate", "5", "--slo-ttft", "100", "--slo-tpot", "10" };
        var at = args.IndexOf(option);
        if (at >= 0)
        {
            args[at + 1] = value;
        }
        else
        {
            args.AddRange([option, value]);
        }

        var run = _lens.Run([.. args]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(message, run.Stderr);
    }
}
