namespace Lens.Core.Tests;

/// <summary>
/// Serving stacks by their own knobs: each stack's generated buckets equal what the stack's own rule gives. The vLLM on Gaudi
/// expectations were computed by running vllm-gaudi's own bucketing code (vllm_gaudi/extension/bucketing/common.py,
/// HPUBucketingManager.generate_prompt_buckets / generate_decode_buckets, at commit 091bbad) with the same settings.
/// </summary>
public class StackConfigTests
{
    private static StackDeployment Gaudi(string env, Func<string, string>? readFile = null) =>
        ServingStacks.Resolve("vllm-gaudi", StackKnobs.FromEnvLines(env, "gaudi.env"), readFile: readFile);

    [Fact]
    public void Gaudi_ranges_follow_the_documented_examples()
    {
        // linear.py warmup_range docstring and docs/features/bucketing_mechanism.md.
        Assert.Equal([2, 4, 8, 16, 32, 64], VllmGaudiStack.LinearRange(2, 32, 64));
        Assert.Equal([128, 256, 384, 512], VllmGaudiStack.LinearRange(128, 128, 512));
        Assert.Equal([0, 32, 64], VllmGaudiStack.LinearRange(0, 32, 64)); // min 0: ramp from step, plus a 0 bucket
        // exponential.py warmup_range_with_limit docstring: min 128, step 128, max 2048, 10 buckets.
        Assert.Equal([128, 256, 384, 512, 640, 896, 1152, 1536, 2048], VllmGaudiStack.ExponentialRange(128, 128, 2048, 10));
        Assert.Equal([7], VllmGaudiStack.ExponentialRange(1, 2, 7, 1));
    }

    [Fact]
    public void Gaudi_exponential_default_is_what_vllm_gaudi_generates()
    {
        var d = Gaudi("max_model_len=2048\nmax_num_seqs=8\nmax_num_batched_tokens=2048\nnum_gpu_blocks_override=10000\n");
        Assert.Equal([128, 256, 384, 512, 768, 896, 1280, 1664, 2048], d.Buckets.Prefill.ToArray());
        Assert.Equal([1, 2, 4, 6, 8], d.Buckets.Batch.ToArray());
        Assert.Equal([1, 8, 16, 24, 32, 40, 64, 88, 96, 128], d.Buckets.Decode.ToArray());
        Assert.Equal(SchedulingPolicy.PagedDecode(128, 2048), d.Policy);

        // The KV cache's blocks bound the block buckets at 3x (exponential.py: min(max_decode_blocks, max_blocks * 3)).
        var bound = Gaudi("max_model_len=4096\nmax_num_seqs=64\nmax_num_batched_tokens=4096\nnum_gpu_blocks_override=300\n");
        Assert.Equal([128, 256, 384, 512, 640, 896, 1280, 1664, 2304, 3072, 4096], bound.Buckets.Prefill.ToArray());
        Assert.Equal([1, 2, 4, 8, 12, 22, 36, 64], bound.Buckets.Batch.ToArray());
        Assert.Equal([1, 32, 64, 128, 192, 256, 320, 384, 448, 576, 704, 900], bound.Buckets.Decode.ToArray());
    }

    [Fact]
    public void Gaudi_linear_reads_its_bucket_variables()
    {
        var d = Gaudi("VLLM_BUCKETING_STRATEGY=lin\nmax_model_len=2048\nmax_num_seqs=8\nmax_num_batched_tokens=2048\n");
        Assert.Equal(Enumerable.Range(1, 16).Select(i => i * 128).ToArray(), d.Buckets.Prefill.ToArray());
        Assert.Equal([1, 2, 4, 8], d.Buckets.Batch.ToArray());
        Assert.Equal([1, 2, 4, 8, 16, 32, 64, 128], d.Buckets.Decode.ToArray());

        // The deprecated SEQ name stands in for QUERY; export and quotes as env files write them.
        var custom = Gaudi("# tuned\nexport VLLM_BUCKETING_STRATEGY=\"lin\"\nVLLM_DECODE_BS_BUCKET_STEP=16\nVLLM_DECODE_BLOCK_BUCKET_STEP=64\n" +
                           "VLLM_PROMPT_SEQ_BUCKET_MIN=256\nmax_model_len=1024\nmax_num_seqs=48\nmax_num_batched_tokens=1024\n");
        Assert.Equal([256, 384, 512, 640, 768, 896, 1024], custom.Buckets.Prefill.ToArray());
        Assert.Equal([1, 2, 4, 8, 16, 32, 48], custom.Buckets.Batch.ToArray());
        Assert.Equal([1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 320, 384], custom.Buckets.Decode.ToArray());
    }

    [Fact]
    public void Gaudi_bucketing_file_is_read_as_file_strategy_reads_it()
    {
        // vllm_gaudi/extension/bucketing/bucketing_file.txt, the stack's sample.
        const string file = "# sample\n(1, 2048, 0)\n(1, [256, 512], [0, 4, 8])\n\n(64, 1, 1024)\n(32, 1, 512)\n(1, 1, range(256, 512, 32))\n";
        var d = Gaudi("VLLM_BUCKETING_FROM_FILE=b.txt\nmax_model_len=4096\nmax_num_seqs=64\nmax_num_batched_tokens=4096\n",
            name => name == "b.txt" ? file : throw new FileNotFoundException(name));
        Assert.Equal([256, 512, 2048], d.Buckets.Prefill.ToArray());
        Assert.Equal([1, 32, 64], d.Buckets.Batch.ToArray());
        Assert.Equal([32, 512, 1024], d.Buckets.Decode.ToArray()); // (1, 1, 256..480) capped at 1 x ceil(4096 / 128) = 32
        Assert.Contains(d.Notes, n => n.Contains("cached context", StringComparison.Ordinal));
        Assert.Contains(d.Notes, n => n.Contains("compiles 3 of the 3 x 3", StringComparison.Ordinal));
    }

    [Fact]
    public void Nxdi_generates_by_its_rule_or_takes_the_lists()
    {
        var generated = ServingStacks.Resolve("nxdi", StackKnobs.FromJson("{\"seq_len\": 3000, \"max_context_length\": 2048, \"batch_size\": 8, " +
                                                                          "\"token_generation_batches\": [1, 4]}", "neuron_config.json"));
        Assert.Equal([128, 256, 512, 1024, 2048], generated.Buckets.Prefill.ToArray());
        Assert.Equal([128, 256, 512, 1024, 2048, 3000], generated.Buckets.Decode.ToArray());
        Assert.Equal([1, 4, 8], generated.Buckets.Batch.ToArray()); // the max batch size is always added
        Assert.True(generated.Policy.IsDefault);

        var listed = ServingStacks.Resolve("nxdi", StackKnobs.FromJson("{\"seq_len\": 1024, \"context_encoding_buckets\": [100, 500], " +
                                                                       "\"token_generation_buckets\": [600, 1024]}", "n.json"));
        Assert.Equal(new BucketSet([100, 500], [600, 1024]), listed.Buckets);

        var off = ServingStacks.Resolve("nxdi", StackKnobs.FromJson("{\"seq_len\": 1024, \"max_context_length\": 512, \"enable_bucketing\": false}", "n.json"));
        Assert.Equal(new BucketSet([512], [1024]), off.Buckets);

        var chunked = ServingStacks.Resolve("nxdi", StackKnobs.FromJson("{\"seq_len\": 2048, \"max_context_length\": 512, \"is_chunked_prefill\": true, " +
                                                                        "\"chunked_prefill_config\": {\"max_num_seqs\": 8}}", "n.json"));
        Assert.Equal(SchedulingPolicy.ChunkedPrefill(512, [128, 256, 512], 8, 2048), chunked.Policy);
        Assert.Equal([128, 256, 512, 1024, 2048], chunked.Buckets.Decode.ToArray()); // the context buckets
    }

    [Fact]
    public void Vllm_neuron_builds_the_neuron_config_and_merges_the_override()
    {
        var plain = ServingStacks.Resolve("vllm-neuron", StackKnobs.FromJson("{\"max_model_len\": 1024, \"max_num_seqs\": 6}", "vllm.json"));
        Assert.Equal([128, 256, 512, 1024], plain.Buckets.Prefill.ToArray());
        Assert.Equal([128, 256, 512, 1024], plain.Buckets.Decode.ToArray());
        Assert.Equal([1, 2, 4, 6], plain.Buckets.Batch.ToArray()); // num_seqs buckets: powers of two, then max_num_seqs
        Assert.True(plain.Policy.IsDefault);

        // vLLM's CLI takes the override as JSON text.
        var overridden = ServingStacks.Resolve("vllm-neuron", StackKnobs.FromPairs([new("max_model_len", "2048"), new("max_num_seqs", "8"),
            new("override_neuron_config", "{\"context_encoding_buckets\": [256, 1024], \"token_generation_batches\": [2, 8]}")], "--stack-set"));
        Assert.Equal([256, 1024], overridden.Buckets.Prefill.ToArray());
        Assert.Equal([2, 8], overridden.Buckets.Batch.ToArray());

        // The plugin's default max_num_seqs (32), and its neuron_config options under additional_config.
        var options = ServingStacks.Resolve("vllm-neuron", StackKnobs.FromJson("{\"max_model_len\": 4096, \"additional_config\": {\"neuron_config\": " +
                                                                               "{\"num_batched_tokens_buckets\": [512, 4096], \"num_seqs_buckets\": [4, 32]}}}", "vllm.json"));
        Assert.Equal([512, 4096], options.Buckets.Prefill.ToArray());
        Assert.Equal([4, 32], options.Buckets.Batch.ToArray());
        Assert.Equal([1, 2, 4, 8, 16, 32], ServingStacks.Resolve("vllm-neuron", StackKnobs.FromJson("{\"max_model_len\": 512}", "v.json")).Buckets.Batch.ToArray());

        var chunked = ServingStacks.Resolve("vllm-neuron", StackKnobs.FromJson("{\"max_model_len\": 2048, \"max_num_seqs\": 16, \"enable_chunked_prefill\": true, " +
                                                                               "\"max_num_batched_tokens\": 256}", "vllm.json"));
        Assert.Equal(SchedulingPolicy.ChunkedPrefill(256, [128, 256], 16, 2048), chunked.Policy);
    }

    [Fact]
    public void Rbln_prefill_steps_every_chunk_and_decoders_per_batch_size()
    {
        var d = ServingStacks.Resolve("rbln", StackKnobs.FromJson("{\"rbln_max_seq_len\": 1000, \"rbln_batch_size\": 4, \"rbln_prefill_chunk_size\": 256, " +
                                                                  "\"rbln_decoder_batch_sizes\": [2, 1]}", "rbln_config.json"));
        Assert.Equal([256, 512, 768, 1000], d.Buckets.Prefill.ToArray());
        Assert.Equal([1000], d.Buckets.Decode.ToArray());
        Assert.Equal([1, 2, 4], d.Buckets.Batch.ToArray()); // batch_size appended when the largest decoder is below it
        Assert.True(d.Policy.IsDefault);
        var defaults = ServingStacks.Resolve("rbln", StackKnobs.FromJson("{\"max_seq_len\": 512}", "rbln_config.json"));
        Assert.Equal(new BucketSet([128, 256, 384, 512], [512]), defaults.Buckets);
    }

    [Fact]
    public void Furiosa_pairs_become_the_grid_and_missing_cells_are_named()
    {
        var d = ServingStacks.Resolve("furiosa", StackKnobs.FromJson("{\"bucket_config\": {\"prefill_buckets\": [[1, 128], [1, 512]], " +
                                                                     "\"decode_buckets\": [[1, 1024], [4, 1024], [1, 2048]]}}", "furiosa.json"));
        Assert.Equal(new BucketSet([128, 512], [1024, 2048], batch: [1, 4]), d.Buckets);
        Assert.Contains(d.Notes, n => n.Contains("[4, 2048]", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("vllm-gaudi", "max_model_len=2048\nmax_num_seqs=abc\n", "gaudi.env:2: max_num_seqs is \"abc\"; allowed an integer in 1..65536")]
    [InlineData("vllm-gaudi", "max_model_len=2048\nVLLM_BUCKETING_STRATEGY=pad\n", "gaudi.env:2: VLLM_BUCKETING_STRATEGY is pad")]
    [InlineData("vllm-gaudi", "max_model_len=2048\nVLLM_BUCKETING_STRATEGY=lin\nVLLM_PROMPT_QUERY_BUCKET_MIN=4096\n", "gaudi.env:3: VLLM_PROMPT_QUERY_BUCKET_MIN 4096 is above the maximum 2048")]
    [InlineData("vllm-gaudi", "max_num_seqs=8\n", "max_model_len is required")]
    [InlineData("vllm-gaudi", "max_model_len 2048\n", "gaudi.env:1: expected KEY=VALUE")]
    [InlineData("vllm-gaudi", "max_model_len=2048\nVLLM_CONTIGUOUS_PA=true\n", "gaudi.env:2: VLLM_CONTIGUOUS_PA selects contiguous paged attention")]
    [InlineData("nxdi", "{\"seq_len\": 1024, \"context_encoding_buckets\": [512, 256]}", "c.json: context_encoding_buckets is not ascending")]
    [InlineData("nxdi", "{\"seq_len\": 1024, \"token_generation_buckets\": [512, 2048]}", "entry #2 is 2048; allowed integers in 1..1024")]
    [InlineData("nxdi", "{\"seq_len\": 1024, \"ctx_batch_size\": 4}", "ctx_batch_size is above 1")]
    [InlineData("nxdi", "{\"seq_len\": 1024, \"is_chunked_prefill\": true}", "needs chunked_prefill_config.max_num_seqs")]
    [InlineData("nxdi", "[1, 2]", "c.json: expected a JSON object")]
    [InlineData("nxdi", "{\"seq_len\": 1024, \"seq_len\": 2048}", "a key given twice?")]
    [InlineData("vllm-gaudi", "max_model_len=2048\nVLLM_BUCKETING_STRATEGY=lin\nVLLM_DECODE_BLOCK_BUCKET_STEP=1\nmax_num_seqs=4096\n", "gaudi.env:3: VLLM_DECODE_BLOCK_BUCKET_{MIN,STEP,MAX}: linear buckets min=1, step=1, max=65536 give more than 4096 buckets")]
    [InlineData("vllm-neuron", "{\"max_model_len\": 1024, \"enable_chunked_prefill\": true}", "enable_chunked_prefill needs max_num_batched_tokens")]
    [InlineData("vllm-neuron", "{\"max_model_len\": 1024, \"override_neuron_config\": \"{oops\"}", "override_neuron_config is not a JSON object")]
    [InlineData("vllm-neuron", "{\"max_model_len\": 1024, \"max_num_seqs\": 8, \"additional_config\": {\"neuron_config\": {\"num_seqs_buckets\": [1, 4]}}}", "c.json additional_config neuron_config: num_seqs_buckets ends at 4; its largest must equal max_num_seqs 8")]
    [InlineData("rbln", "{\"max_seq_len\": 1024, \"prefill_chunk_size\": 100}", "prefill_chunk_size is 100; allowed a positive multiple of 64")]
    [InlineData("rbln", "{\"max_seq_len\": 1024, \"batch_size\": 2, \"decoder_batch_sizes\": [4]}", "entry #1 is 4; allowed integers in 1..2")]
    [InlineData("furiosa", "{\"prefill_buckets\": [[2, 128]], \"decode_buckets\": [[1, 256]]}", "has [2, 128]; LENS runs each prefill alone")]
    [InlineData("furiosa", "{\"prefill_buckets\": [[1, 128]], \"decode_buckets\": [[1]]}", "decode_buckets entry #1 is [1]; allowed a pair")]
    [InlineData("tgi", "{}", "unknown stack 'tgi'; known stacks: nxdi, vllm-neuron, vllm-gaudi, rbln, furiosa")]
    public void Bad_configs_are_refused_naming_file_key_and_range(string stack, string text, string expected)
    {
        var json = text.StartsWith('{') || text.StartsWith('[');
        var error = Assert.Throws<StackConfigException>(() =>
            ServingStacks.Resolve(stack, json ? StackKnobs.FromJson(text, "c.json") : StackKnobs.FromEnvLines(text, "gaudi.env")));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("(1, 128)", "b.txt:2: expected three fields")]
    [InlineData("1, 128, 0", "b.txt:2: expected a bucket (batch, query, context)")]
    [InlineData("(1, range(0, 100000, 1), 0)", "has 100000 values; allowed at most 10000")]
    [InlineData("(x, 1, 0)", "b.txt:2: batch 'x' is not an integer")]
    public void Bad_bucketing_file_lines_are_refused_naming_the_line(string line, string expected)
    {
        var error = Assert.Throws<StackConfigException>(() => Gaudi("VLLM_BUCKETING_FROM_FILE=b.txt\nmax_model_len=2048\n", _ => "# buckets\n" + line + "\n"));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
