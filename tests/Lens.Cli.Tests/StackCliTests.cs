using System.Text.Json;

namespace Lens.Cli.Tests;

/// <summary><c>--stack</c> on plan, <c>lens stack</c>, and <c>lens advise --emit</c> read back with <c>--stack-config</c>, run as processes.</summary>
public sealed class StackCliTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    private static int[] Ints(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt32())];

    [Fact]
    public void Plan_takes_the_buckets_from_an_nxdi_neuron_config_and_explicit_options_override()
    {
        _lens.Write("neuron_config.json", "{\"seq_len\": 1024, \"max_context_length\": 512, \"batch_size\": 4, \"token_generation_batches\": [1, 2]}");
        var run = _lens.Run("plan", "--stack", "nxdi", "--stack-config", "neuron_config.json", "--out", "plan.csv", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using (var doc = JsonDocument.Parse(run.Stdout))
        {
            Assert.Equal("P=128,256,512 D=128,256,512,1024 B=1,2,4 after-append", doc.RootElement.GetProperty("buckets").GetString());
        }

        // The same plan as the explicit lists give.
        var same = _lens.Run("plan", "--prefill-buckets", "128,256,512", "--decode-buckets", "128,256,512,1024", "--batch-buckets", "1,2,4",
            "--out", "explicit.csv");
        Assert.True(same.ExitCode == 0, same.Stderr);
        Assert.Equal(_lens.Read("explicit.csv"), _lens.Read("plan.csv"));

        var overridden = _lens.Run("plan", "--stack", "nxdi", "--stack-config", "neuron_config.json", "--stack-set", "seq_len=2048",
            "--prefill-buckets", "256,512", "--batch-buckets", "1", "--out", "plan2.csv", "--json");
        Assert.True(overridden.ExitCode == 0, overridden.Stderr);
        using var doc2 = JsonDocument.Parse(overridden.Stdout);
        Assert.Equal("P=256,512 D=128,256,512,1024,2048 after-append", doc2.RootElement.GetProperty("buckets").GetString());
    }

    [Fact]
    public void Bad_stack_configs_are_refused_and_a_paged_stack_is_planned_paged()
    {
        _lens.Write("bad.json", "{\"seq_len\": 1024, \"token_generation_buckets\": [512, 4096]}");
        var bad = _lens.Run("plan", "--stack", "nxdi", "--stack-config", "bad.json", "--out", "plan.csv");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("bad.json: token_generation_buckets entry #2 is 4096; allowed integers in 1..1024", bad.Stderr, StringComparison.Ordinal);

        _lens.Write("gaudi.env", "max_model_len=2048\nmax_num_seqs=oops\n");
        var env = _lens.Run("plan", "--stack", "vllm-gaudi", "--stack-config", "gaudi.env", "--out", "plan.csv");
        Assert.Equal(1, env.ExitCode);
        Assert.Contains("gaudi.env:2: max_num_seqs is \"oops\"; allowed an integer in 1..65536", env.Stderr, StringComparison.Ordinal);

        _lens.Write("gaudi.env", "max_model_len=2048\nmax_num_seqs=8\n");
        // vLLM on Gaudi runs paged decode: plan takes the stack's policy as it is (its cells are batch x block buckets).
        var paged = _lens.Run("plan", "--stack", "vllm-gaudi", "--stack-config", "gaudi.env", "--out", "plan.csv", "--json");
        Assert.True(paged.ExitCode == 0, paged.Stderr);
        Assert.Contains("blocks", paged.Stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(_lens.PathOf("plan.csv")));
        var both = _lens.Run("plan", "--stack", "vllm-gaudi", "--stack-config", "gaudi.env", "--scheduler", "chunked", "--out", "plan3.csv");
        Assert.Equal(1, both.ExitCode is 1 or 2 ? 1 : both.ExitCode);
        Assert.Contains("give either --stack", both.Stderr + both.Stdout, StringComparison.Ordinal);

        var unknown = _lens.Run("plan", "--stack", "tgi", "--out", "plan.csv");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("unknown stack 'tgi'", unknown.Stderr, StringComparison.Ordinal);
        var presetToo = _lens.Run("plan", "--stack", "nxdi", "--preset", "nxdi", "--out", "plan.csv");
        Assert.Equal(2, presetToo.ExitCode);
        var missing = _lens.Run("plan", "--stack", "nxdi", "--stack-config", "nope.json", "--out", "plan.csv");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("--stack-config file 'nope.json' does not exist", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Stack_shows_gaudi_buckets_from_env_file_environment_and_sets()
    {
        _lens.Write("gaudi.env", "# vllm-gaudi\nmax_model_len=2048\nmax_num_seqs=8\nmax_num_batched_tokens=2048\n");
        _lens.Environment["VLLM_BUCKETING_STRATEGY"] = "lin";
        var run = _lens.Run("stack", "--stack", "vllm-gaudi", "--stack-config", "gaudi.env", "--stack-from-environment", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var doc = JsonDocument.Parse(run.Stdout);
        var root = doc.RootElement;
        Assert.Equal(Enumerable.Range(1, 16).Select(i => i * 128).ToArray(), Ints(root.GetProperty("prefill")));
        Assert.Equal([1, 2, 4, 8, 16, 32, 64, 128], Ints(root.GetProperty("decode")));
        Assert.Equal("blocks", root.GetProperty("decodeUnit").GetString());
        Assert.Equal("prefill-first paged", root.GetProperty("policy").GetProperty("name").GetString());
        Assert.Equal(128, root.GetProperty("policy").GetProperty("blockSize").GetInt32());

        var set = _lens.Run("stack", "--stack", "vllm-gaudi", "--stack-config", "gaudi.env", "--stack-from-environment",
            "--stack-set", "VLLM_DECODE_BS_BUCKET_MAX=4", "--json");
        Assert.True(set.ExitCode == 0, set.Stderr);
        using var doc2 = JsonDocument.Parse(set.Stdout);
        Assert.Equal([1, 2, 4], Ints(doc2.RootElement.GetProperty("batch")));
    }

    private void WriteModel(string name) => WhatIfCliTests.WriteModel(_lens, name); // P = D = 128..1024, B = 1, 2, 4

    [Theory]
    [InlineData("nxdi", "advice.nxdi.json")]
    [InlineData("vllm-neuron", "advice.vllm-neuron.json")]
    [InlineData("furiosa", "advice.furiosa.json")]
    [InlineData("vllm-gaudi", "advice.vllm-gaudi.env")]
    public void Advise_emits_the_recommendation_in_the_stacks_format_and_it_reads_back(string stack, string file)
    {
        WriteModel("model.json");
        var lines = Enumerable.Range(0, 80).Select(n => $"{n * 150},{(n % 3 == 0 ? 700 : 90)},{(n % 2 == 0 ? 30 : 120)}");
        _lens.Write("trace.csv", "arrival_ms,input_len,output_len\n" + string.Join('\n', lines) + "\n");
        var run = _lens.Run("advise", "--model", "model.json", "--trace", "trace.csv", "--max-buckets", "3", "--out", "advice.json", "--emit", stack);
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.True(File.Exists(_lens.PathOf(file)), run.Stdout);
        using var advice = JsonDocument.Parse(_lens.Read("advice.json"));
        var recommended = advice.RootElement.GetProperty("advice").GetProperty("recommended");

        var back = _lens.Run("stack", "--stack", stack, "--stack-config", file, "--json");
        Assert.True(back.ExitCode == 0, back.Stderr);
        using var doc = JsonDocument.Parse(back.Stdout);
        Assert.Equal(Ints(recommended.GetProperty("prefill")), Ints(doc.RootElement.GetProperty("prefill")));
        Assert.Equal(Ints(recommended.GetProperty("batch")), Ints(doc.RootElement.GetProperty("batch")));
        var decode = Ints(recommended.GetProperty("decode"));
        if (stack == "vllm-gaudi")
        {
            // Padded token buckets become the batch's total KV blocks: b x ceil(d / 128) for every batch bucket b.
            var blocks = Ints(recommended.GetProperty("batch")).SelectMany(b => decode.Select(d => b * ((d + 127) / 128))).Distinct().Order();
            Assert.Equal(blocks, Ints(doc.RootElement.GetProperty("decode")));
            Assert.True(File.Exists(_lens.PathOf("advice.vllm-gaudi.buckets.txt")));
            Assert.Contains("VLLM_BUCKETING_FROM_FILE=advice.vllm-gaudi.buckets.txt", run.Stdout, StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal(decode, Ints(doc.RootElement.GetProperty("decode")));
            Assert.Equal("prefill-first", doc.RootElement.GetProperty("policy").GetProperty("name").GetString());
            var plan = _lens.Run("plan", "--stack", stack, "--stack-config", file, "--out", "plan.csv"); // ready for the next profile
            Assert.True(plan.ExitCode == 0, plan.Stderr);
        }
    }

    [Fact]
    public void Advise_refuses_an_unknown_emit_stack()
    {
        WriteModel("model.json");
        var run = _lens.Run("advise", "--model", "model.json", "--rate", "2", "--input-dist", "fixed:100", "--output-dist", "fixed:50",
            "--out", "advice.json", "--emit", "tgi");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--emit: unknown stack 'tgi'", run.Stderr, StringComparison.Ordinal);
    }
}
