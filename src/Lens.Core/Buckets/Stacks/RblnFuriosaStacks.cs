namespace Lens.Core;

/// <summary>Rebellions RBLN (optimum-rbln's <c>rbln_config</c>) and FuriosaAI RNGD (furiosa-llm's <c>BucketConfig</c>).</summary>
public static class RblnFuriosaStacks
{
    /// <summary>optimum-rbln's default <c>prefill_chunk_size</c> (RBLNDecoderOnlyModelConfig: "Defaults to 128").</summary>
    public const int DefaultPrefillChunk = 128;

    private const int MaxTokens = SchedulingPolicy.MaxTokens;

    /// <summary>
    /// RBLN (optimum-rbln <c>RBLNDecoderOnlyModelConfig</c>, keys as in <c>rbln_config.json</c> or with the <c>rbln_</c> prefix that
    /// <c>from_pretrained</c> takes): <c>max_seq_len</c> (required), <c>batch_size</c> (default 1), <c>prefill_chunk_size</c> (default
    /// 128, "a positive integer divisible by 64"), <c>decoder_batch_sizes</c> (default <c>[batch_size]</c>; each at most
    /// <c>batch_size</c>, which is appended when the largest is below it).
    /// <para>LENS's reading: prefill runs in chunks of <c>prefill_chunk_size</c> tokens, so its cost steps every chunk: prefill buckets
    /// are the chunk's multiples up to <c>max_seq_len</c>; one decoder per batch size, compiled for <c>max_seq_len</c>: one decode
    /// bucket. Prefill never mixes with decode: prefill-first, padded.</para>
    /// </summary>
    public static StackDeployment Rbln(StackKnobs config, DecodeConvention convention)
    {
        ArgumentNullException.ThrowIfNull(config);
        var maxSeqLen = Int(config, "max_seq_len", 1, MaxTokens)
            ?? throw new StackConfigException($"{config.Source}: max_seq_len is required (rbln_max_seq_len, the longest sequence, 1..{MaxTokens})");
        var batchSize = Int(config, "batch_size", 1, LensCsv.MaxBatch) ?? 1;
        var chunk = Int(config, "prefill_chunk_size", 64, MaxTokens) ?? DefaultPrefillChunk;
        if (chunk % 64 != 0)
        {
            throw config.Bad(Key(config, "prefill_chunk_size"), $"is {chunk}; allowed a positive multiple of 64 (optimum-rbln)");
        }

        var key = Key(config, "decoder_batch_sizes");
        var sizes = config.IntList(key, 1, batchSize) ?? [batchSize];
        int[] batch = [.. sizes.Append(batchSize).Distinct().Order()];
        var prefill = new List<int>();
        for (long p = chunk; p < maxSeqLen; p += chunk)
        {
            prefill.Add((int)p);
        }

        prefill.Add(maxSeqLen);
        return new StackDeployment("rbln", new BucketSet(prefill, [maxSeqLen], convention, batch), SchedulingPolicy.Default,
            [$"prefill runs in chunks of {chunk} tokens: {prefill.Count} prefill buckets; one decoder per batch size at max_seq_len {maxSeqLen}"]);
    }

    /// <summary>
    /// FuriosaAI RNGD (furiosa-llm <c>BucketConfig</c>): <c>prefill_buckets</c> and <c>decode_buckets</c>, lists of
    /// <c>[batch, attention size]</c> (also read under <c>bucket_config</c>). LENS runs each prefill alone, so prefill buckets must have
    /// batch 1; the decode grid is every batch size by every attention size listed, and a pair the list lacks is a cell the stack did
    /// not compile (named in the notes). Prefill-first, padded.
    /// </summary>
    public static StackDeployment Furiosa(StackKnobs config, DecodeConvention convention)
    {
        ArgumentNullException.ThrowIfNull(config);
        var source = config.Object("bucket_config") ?? config;
        var prefillPairs = source.PairList("prefill_buckets", MaxTokens)
            ?? throw new StackConfigException($"{config.Source}: prefill_buckets is required: a list of [batch, attention size], e.g. [[1, 128], [1, 256]]");
        var decodePairs = source.PairList("decode_buckets", MaxTokens)
            ?? throw new StackConfigException($"{config.Source}: decode_buckets is required: a list of [batch, attention size], e.g. [[1, 1024], [4, 1024]]");
        if (prefillPairs.FirstOrDefault(p => p.First != 1) is { First: > 1 } bad)
        {
            throw source.Bad("prefill_buckets", $"has [{bad.First}, {bad.Second}]; LENS runs each prefill alone: allowed batch 1");
        }

        if (decodePairs.Max(p => p.First) > LensCsv.MaxBatch)
        {
            throw source.Bad("decode_buckets", $"has a batch above {LensCsv.MaxBatch}; allowed batches in 1..{LensCsv.MaxBatch}");
        }

        var prefill = prefillPairs.Select(p => p.Second).Distinct().Order().ToArray();
        var decode = decodePairs.Select(p => p.Second).Distinct().Order().ToArray();
        var batch = decodePairs.Select(p => p.First).Distinct().Order().ToArray();
        var notes = new List<string>();
        var listed = decodePairs.ToHashSet();
        var missing = (long)batch.Length * decode.Length - listed.Count;
        if (missing > 0)
        {
            var first = batch.SelectMany(b => decode.Select(d => (b, d))).First(c => !listed.Contains(c));
            notes.Add($"{missing} (batch, attention size) cells are not in decode_buckets (e.g. [{first.b}, {first.d}]): the stack did not compile them");
        }

        try
        {
            return new StackDeployment("furiosa", new BucketSet(prefill, decode, convention, batch), SchedulingPolicy.Default, notes);
        }
        catch (BucketSetException ex)
        {
            throw new StackConfigException($"{config.Source}: {ex.Message}");
        }
    }

    /// <summary>The key as given: plain (<c>max_seq_len</c>, as in rbln_config.json) or with the <c>rbln_</c> prefix.</summary>
    private static string Key(StackKnobs config, string key) => config.Has(key) || !config.Has("rbln_" + key) ? key : "rbln_" + key;

    private static int? Int(StackKnobs config, string key, int min, int max) => config.Int(Key(config, key), min, max);
}
