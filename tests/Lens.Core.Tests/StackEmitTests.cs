namespace Lens.Core.Tests;

/// <summary>Writing buckets in a stack's own format and reading them back with the stack's rules gives the same deployment.</summary>
public class StackEmitTests
{
    private static StackDeployment ReadBack(string stack, StackConfigText emitted) =>
        ServingStacks.Resolve(stack,
            ServingStacks.TakesEnvLines(stack) ? StackKnobs.FromEnvLines(emitted.Text, "emitted.env") : StackKnobs.FromJson(emitted.Text, "emitted.json"),
            readFile: name => name == "buckets.txt" ? emitted.BucketFileText! : throw new FileNotFoundException(name));

    public static TheoryData<string, string> Configs => new()
    {
        { "nxdi", "{\"seq_len\": 3000, \"max_context_length\": 2048, \"batch_size\": 8, \"token_generation_batches\": [1, 4]}" },
        { "nxdi", "{\"seq_len\": 2048, \"max_context_length\": 512, \"is_chunked_prefill\": true, \"chunked_prefill_config\": {\"max_num_seqs\": 8}}" },
        { "vllm-neuron", "{\"max_model_len\": 1024, \"max_num_seqs\": 6}" },
        { "vllm-neuron", "{\"max_model_len\": 2048, \"max_num_seqs\": 16, \"enable_chunked_prefill\": true, \"max_num_batched_tokens\": 256}" },
        { "vllm-gaudi", "max_model_len=4096\nmax_num_seqs=64\nmax_num_batched_tokens=4096\nnum_gpu_blocks_override=300\n" },
        { "vllm-gaudi", "VLLM_BUCKETING_STRATEGY=lin\nblock_size=64\nmax_model_len=1000\nmax_num_seqs=12\nmax_num_batched_tokens=512\n" },
        { "rbln", "{\"max_seq_len\": 1000, \"batch_size\": 4, \"prefill_chunk_size\": 256, \"decoder_batch_sizes\": [1, 2]}" },
        { "furiosa", "{\"prefill_buckets\": [[1, 128], [1, 512]], \"decode_buckets\": [[1, 1024], [4, 1024], [4, 2048], [1, 2048]]}" },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void A_stack_config_written_and_read_back_gives_the_same_buckets_and_policy(string stack, string config)
    {
        var knobs = ServingStacks.TakesEnvLines(stack) ? StackKnobs.FromEnvLines(config, "in.env") : StackKnobs.FromJson(config, "in.json");
        var original = ServingStacks.Resolve(stack, knobs);
        var emitted = StackEmitter.Emit(stack, original.Buckets, original.Policy, knobs);
        var back = ReadBack(stack, emitted);
        Assert.Equal(original.Buckets, back.Buckets);
        Assert.Equal(original.Policy, back.Policy);
        Assert.Empty(emitted.Notes);
    }

    [Fact]
    public void Padded_buckets_become_gaudi_block_buckets_per_batch()
    {
        var buckets = new BucketSet([128, 512], [256, 1024], batch: [1, 4]);
        var emitted = StackEmitter.Emit("vllm-gaudi", buckets, SchedulingPolicy.Default, StackKnobs.FromEnvLines("block_size=128\n", "cur.env"));
        Assert.Contains("(1, [128, 512], 0)", emitted.BucketFileText, StringComparison.Ordinal);
        Assert.Contains("(1, 1, [2, 8])", emitted.BucketFileText, StringComparison.Ordinal);
        Assert.Contains("(4, 1, [8, 32])", emitted.BucketFileText, StringComparison.Ordinal);
        Assert.Contains("VLLM_BUCKETING_FROM_FILE=buckets.txt", emitted.Text, StringComparison.Ordinal);
        var back = ReadBack("vllm-gaudi", emitted);
        Assert.Equal([128, 512], back.Buckets.Prefill.ToArray());
        Assert.Equal([1, 4], back.Buckets.Batch.ToArray());
        Assert.Equal([2, 8, 32], back.Buckets.Decode.ToArray());
        Assert.Equal(SchedulingPolicy.PagedDecode(128, 1024), back.Policy);
        Assert.Single(emitted.Notes);
    }

    [Fact]
    public void What_a_stack_cannot_express_is_said()
    {
        var buckets = new BucketSet([100, 300], [400, 800], batch: [1, 2, 8]);
        var rbln = StackEmitter.Emit("rbln", buckets, SchedulingPolicy.Default);
        Assert.Contains("RBLN cannot take length buckets", Assert.Single(rbln.Notes), StringComparison.Ordinal);
        var back = ReadBack("rbln", rbln);
        Assert.Equal([1, 2, 8], back.Buckets.Batch.ToArray()); // the batch buckets carry over
        Assert.Equal([800], back.Buckets.Decode.ToArray());

        Assert.Throws<StackConfigException>(() => StackEmitter.Emit("nxdi", buckets, SchedulingPolicy.PagedDecode(16)));
        Assert.Throws<StackConfigException>(() => StackEmitter.Emit("rbln", buckets, SchedulingPolicy.ChunkedPrefill(256, [256], 4)));
    }
}
