using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Lens.Core;

/// <summary>A stack's configuration text, ready to paste: the main text (a JSON object, or environment lines for vLLM on Gaudi),
/// the bucketing file it names (vLLM on Gaudi only), and notes on what the stack's format cannot express.</summary>
public sealed record StackConfigText(string Text, string? BucketFileText, IReadOnlyList<string> Notes);

/// <summary>
/// Writes a bucket set and policy in a serving stack's own configuration format, so that reading it back with
/// <see cref="ServingStacks.Resolve"/> gives the same buckets wherever the format can express them (each method says where not).
/// </summary>
public static class StackEmitter
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// The stack's configuration for <paramref name="buckets"/> under <paramref name="policy"/>. <paramref name="current"/> (the
    /// deployment's present config, may be empty) supplies knobs the buckets do not decide (RBLN's <c>prefill_chunk_size</c>, vLLM on
    /// Gaudi's <c>block_size</c> and <c>max_num_batched_tokens</c>). <paramref name="bucketFileName"/> is the name the Gaudi env lines
    /// give <c>VLLM_BUCKETING_FROM_FILE</c>.
    /// </summary>
    public static StackConfigText Emit(string stack, BucketSet buckets, SchedulingPolicy policy, StackKnobs? current = null,
        string bucketFileName = "buckets.txt")
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(policy);
        current ??= StackKnobs.Empty;
        var name = ServingStacks.Normalize(stack);
        if (name != "vllm-gaudi" && policy.Execution == ExecutionKind.Paged)
        {
            throw new StackConfigException($"{name} runs padded decode; a paged policy ({policy.Name}) is written for vllm-gaudi only");
        }

        if (policy.Scheduler == SchedulerKind.Chunked && name is not ("nxdi" or "vllm-neuron"))
        {
            throw new StackConfigException($"{name} has no chunked prefill that LENS models; a chunked policy is written for nxdi and vllm-neuron");
        }

        return name switch
        {
            "nxdi" => new(Json(NeuronConfig(buckets, policy)), null, []),
            "vllm-neuron" => VllmNeuron(buckets, policy),
            "vllm-gaudi" => Gaudi(buckets, policy, current, bucketFileName),
            "rbln" => Rbln(buckets, current),
            _ => Furiosa(buckets),
        };
    }

    /// <summary>NxD Inference's neuron config keys for the buckets (chunked: the token buckets as context-encoding buckets).</summary>
    private static JsonObject NeuronConfig(BucketSet buckets, SchedulingPolicy policy)
    {
        if (policy.Scheduler == SchedulerKind.Chunked)
        {
            return new JsonObject
            {
                ["seq_len"] = buckets.MaxSequence,
                ["max_context_length"] = policy.MaxNumBatchedTokens,
                ["enable_bucketing"] = true,
                ["context_encoding_buckets"] = Array(policy.TokenBuckets),
                ["token_generation_buckets"] = Array(buckets.Decode),
                ["batch_size"] = 1,
                ["ctx_batch_size"] = 1,
                ["is_chunked_prefill"] = true,
                ["chunked_prefill_config"] = new JsonObject { ["max_num_seqs"] = policy.MaxNumSeqs },
            };
        }

        var config = new JsonObject
        {
            ["seq_len"] = buckets.MaxSequence,
            ["max_context_length"] = buckets.MaxPrompt,
            ["enable_bucketing"] = true,
            ["context_encoding_buckets"] = Array(buckets.Prefill),
            ["token_generation_buckets"] = Array(buckets.Decode),
            ["batch_size"] = buckets.MaxBatch,
            ["ctx_batch_size"] = 1,
            ["is_continuous_batching"] = buckets.MaxBatch > 1,
        };
        if (buckets.Batch.Length > 1)
        {
            config["token_generation_batches"] = Array(buckets.Batch);
        }

        return config;
    }

    /// <summary>vLLM on Neuron: vLLM's arguments and <c>additional_config.override_neuron_config</c> carrying NxD Inference's bucket
    /// keys (vLLM's <c>--additional-config</c>).</summary>
    private static StackConfigText VllmNeuron(BucketSet buckets, SchedulingPolicy policy)
    {
        var overrides = NeuronConfig(buckets, policy);
        var chunked = policy.Scheduler == SchedulerKind.Chunked;
        var root = new JsonObject
        {
            ["max_model_len"] = buckets.MaxSequence,
            ["max_num_seqs"] = chunked ? policy.MaxNumSeqs : buckets.MaxBatch,
            ["enable_chunked_prefill"] = chunked,
        };
        if (chunked)
        {
            root["max_num_batched_tokens"] = policy.MaxNumBatchedTokens;
        }
        else
        {
            // vLLM sets batch_size from max_num_seqs and the prompt bound from max_model_len; the override keeps only what differs.
            overrides.Remove("seq_len");
            overrides.Remove("batch_size");
            overrides.Remove("is_continuous_batching");
            overrides["token_generation_batches"] = Array(buckets.Batch);
        }

        root["additional_config"] = new JsonObject { ["override_neuron_config"] = overrides }; // where vllm-neuron reads it
        return new(Json(root), null, []);
    }

    /// <summary>
    /// vLLM on Gaudi: environment lines naming a bucketing file with the exact buckets (the exp and lin rules cannot express an
    /// arbitrary set), and vLLM's engine arguments as lines LENS reads back. Prompt buckets <c>(1, query, 0)</c>; decode buckets
    /// <c>(batch, 1, blocks)</c>: for a paged policy its block buckets, for padded buckets each decode length <c>d</c> becomes
    /// <c>batch x ceil(d / block_size)</c> blocks (the batch's total when every row is at <c>d</c>).
    /// </summary>
    private static StackConfigText Gaudi(BucketSet buckets, SchedulingPolicy policy, StackKnobs current, string bucketFileName)
    {
        if (bucketFileName.Length == 0 || bucketFileName.Any(c => char.IsWhiteSpace(c) || c == '#'))
        {
            throw new StackConfigException($"bucketing file name '{bucketFileName}' must be non-empty, without spaces or '#'");
        }

        var notes = new List<string>();
        var paged = policy.Execution == ExecutionKind.Paged;
        var blockSize = paged ? policy.BlockSize : current.Int("block_size", 1, SchedulingPolicy.MaxTokens) ?? VllmGaudiStack.DefaultBlockSize;
        var maxModelLen = policy.MaxModelLen > 0 ? policy.MaxModelLen
            : paged ? buckets.MaxSequence * blockSize
            : buckets.MaxSequence;
        var budget = Math.Max(buckets.MaxPrompt, current.Int("max_num_batched_tokens", 1, SchedulingPolicy.MaxTokens) ?? 0);
        var file = new StringBuilder();
        file.Append("# vLLM on Gaudi bucketing file (VLLM_BUCKETING_FROM_FILE), written by lens --emit vllm-gaudi\n");
        file.Append("# prompt buckets: (batch, query, context blocks)\n");
        file.Append(CultureInfo.InvariantCulture, $"(1, [{string.Join(", ", buckets.Prefill)}], 0)\n");
        file.Append("# decode buckets: (batch, 1, total KV blocks of the batch)\n");
        foreach (var b in buckets.Batch)
        {
            var blocks = paged ? [.. buckets.Decode] : buckets.Decode.Select(d => b * ((d + blockSize - 1) / blockSize)).Distinct().ToArray();
            file.Append(CultureInfo.InvariantCulture, $"({b}, 1, [{string.Join(", ", blocks)}])\n");
        }

        if (!paged)
        {
            notes.Add($"decode buckets in tokens became total KV blocks per batch bucket (batch x ceil(length / {blockSize})): vLLM on Gaudi buckets decode by blocks");
        }

        var env = new StringBuilder();
        env.Append("# vLLM on Gaudi, written by lens --emit vllm-gaudi: environment variables\n");
        env.Append(CultureInfo.InvariantCulture, $"VLLM_BUCKETING_FROM_FILE={bucketFileName}\n");
        env.Append(CultureInfo.InvariantCulture,
            $"# vLLM engine arguments (vllm serve --block-size {blockSize} --max-model-len {maxModelLen} --max-num-seqs {buckets.MaxBatch} --max-num-batched-tokens {budget}); LENS reads them back from these lines\n");
        env.Append(CultureInfo.InvariantCulture, $"block_size={blockSize}\nmax_model_len={maxModelLen}\nmax_num_seqs={buckets.MaxBatch}\nmax_num_batched_tokens={budget}\n");
        return new(env.ToString(), file.ToString(), notes);
    }

    /// <summary>
    /// RBLN's rbln_config keys. RBLN cannot take length buckets: prefill runs in fixed chunks (<c>prefill_chunk_size</c>: the
    /// recommendation's first prefill bucket when its buckets are that chunk's multiples, else the current config's or 128) and one
    /// decoder per batch size runs at <c>max_seq_len</c>; only the batch buckets and the longest sequence carry over.
    /// </summary>
    private static StackConfigText Rbln(BucketSet buckets, StackKnobs current)
    {
        var first = buckets.Prefill[0];
        var chunkMultiples = first % 64 == 0 && buckets.Prefill.Select((p, i) => p == buckets.MaxSequence || p == (long)first * (i + 1)).All(x => x);
        var chunk = chunkMultiples ? first
            : current.Int("prefill_chunk_size", 64, SchedulingPolicy.MaxTokens) ?? current.Int("rbln_prefill_chunk_size", 64, SchedulingPolicy.MaxTokens)
            ?? RblnFuriosaStacks.DefaultPrefillChunk;
        var root = new JsonObject
        {
            ["max_seq_len"] = buckets.MaxSequence,
            ["batch_size"] = buckets.MaxBatch,
            ["prefill_chunk_size"] = chunk,
            ["decoder_batch_sizes"] = Array(buckets.Batch.Reverse()),
        };
        var back = RblnFuriosaStacks.Rbln(StackKnobs.FromJson(root.ToJsonString(), "emitted"), buckets.Convention).Buckets;
        var notes = new List<string>();
        if (!back.Prefill.SequenceEqual(buckets.Prefill) || !back.Decode.SequenceEqual(buckets.Decode))
        {
            notes.Add($"RBLN cannot take length buckets: prefill runs in chunks of {chunk} tokens and one decoder per batch size at max_seq_len " +
                      $"{buckets.MaxSequence}, so P={string.Join(',', buckets.Prefill)} D={string.Join(',', buckets.Decode)} are not expressed; batch buckets are");
        }

        return new(Json(root), null, notes);
    }

    /// <summary>furiosa-llm's BucketConfig lists: prefill <c>[1, p]</c>, decode every <c>[batch, d]</c> of the grid.</summary>
    private static StackConfigText Furiosa(BucketSet buckets)
    {
        var prefill = new JsonArray([.. buckets.Prefill.Select(p => (JsonNode)new JsonArray(1, p))]);
        var decode = new JsonArray([.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => (JsonNode)new JsonArray(b, d)))]);
        return new(Json(new JsonObject { ["prefill_buckets"] = prefill, ["decode_buckets"] = decode }), null, []);
    }

    private static JsonArray Array(IEnumerable<int> values) => new([.. values.Select(v => (JsonNode)v)]);

    private static string Json(JsonObject obj) => obj.ToJsonString(Indented) + "\n";
}
