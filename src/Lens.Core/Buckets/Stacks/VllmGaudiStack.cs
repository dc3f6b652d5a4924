namespace Lens.Core;

/// <summary>
/// vLLM on Gaudi (vllm-gaudi, formerly vllm-hpu-extension): its bucket rules as its source writes them
/// (vllm_gaudi/extension/bucketing/{common,exponential,linear,file_strategy}.py), read from its own knobs: the environment
/// variables <c>VLLM_BUCKETING_STRATEGY</c> (exp, the default, or lin), <c>VLLM_EXPONENTIAL_BUCKETING</c> (deprecated, overrides it),
/// <c>VLLM_{PROMPT|DECODE}_{BS|QUERY|SEQ|BLOCK}_BUCKET_{MIN,STEP,MAX}</c> (lin only; exp overwrites them, as its source warns),
/// <c>VLLM_BUCKETING_FROM_FILE</c>, and vLLM's engine arguments <c>block_size</c> (Gaudi's default 128, platform.py),
/// <c>max_model_len</c> (required), <c>max_num_seqs</c> (vLLM's default 256), <c>max_num_batched_tokens</c> (vLLM's default 2048 for
/// <c>vllm serve</c> on a device that reports no memory size, as vllm-gaudi's platform does) and <c>num_gpu_blocks_override</c> (the
/// KV cache's blocks, which bound the decode block buckets at 3x; without it there is no bound).
/// <para>LENS's reading: prefill-first with paged decode (method.md, "Scheduling policies"). Prefill buckets are the prompt query
/// buckets at batch 1 and context 0 (a prompt with no cached prefix); decode cells are (batch bucket, block bucket) with the batch's
/// total KV blocks, as non-contiguous paged attention (the default with prefix caching on, vLLM V1's default) counts them.</para>
/// </summary>
public static class VllmGaudiStack
{
    /// <summary>vLLM on Gaudi's default KV block size (vllm_gaudi/platform.py: "default block size for Gaudi should be 128").</summary>
    public const int DefaultBlockSize = 128;

    /// <summary>vLLM's default <c>max_num_seqs</c>.</summary>
    public const int DefaultMaxNumSeqs = 256;

    /// <summary>vLLM's default <c>max_num_batched_tokens</c> for <c>vllm serve</c> on a device reporting no memory size.</summary>
    public const int DefaultMaxNumBatchedTokens = 2048;

    /// <summary>The bucketing file of <c>VLLM_BUCKETING_FROM_FILE</c> holds at most this many buckets after expanding lists.</summary>
    public const int MaxFileBuckets = 100_000;

    /// <summary>Most buckets one range may generate (a hostile step of 1 cannot ask for a million graphs).</summary>
    public const int MaxRangeBuckets = 4096;

    /// <summary>Most (batch, blocks) cells a generated decode grid may have.</summary>
    public const int MaxDecodeCells = 1 << 18;

    private const int MaxTokens = SchedulingPolicy.MaxTokens;

    /// <summary>
    /// The linear strategy's range (linear.py <c>warmup_range</c>): <c>min</c> doubled while below <c>step</c> (and at most <c>max</c>),
    /// then <c>step, 2 step, ...</c> up to <c>max</c> inclusive, keeping values at or above <c>min</c>; <c>min = 0</c> starts the ramp at
    /// <c>step</c> and adds a 0 bucket. <c>max</c> itself is a bucket only when a multiple of <c>step</c> (the source's
    /// <c>range(step, max + 1, step)</c>). Example (linear.py): min 2, step 32, max 64 gives 2, 4, 8, 16, 32, 64.
    /// </summary>
    public static int[] LinearRange(int min, int step, int max)
    {
        if (min < 0 || step < 1 || max < min)
        {
            throw new StackConfigException($"linear buckets need 0 <= min <= max and step >= 1; got min={min}, step={step}, max={max}");
        }

        var zero = min == 0;
        if (zero && max == 0)
        {
            return [0];
        }

        var start = zero ? step : min;
        if ((max - (long)step) / step > MaxRangeBuckets)
        {
            throw new StackConfigException($"linear buckets min={min}, step={step}, max={max} give more than {MaxRangeBuckets} buckets; allowed a step of at least {Math.Max(1, max / MaxRangeBuckets)}");
        }

        var buckets = new SortedSet<int>();
        for (long b = start; b < step && b <= max; b *= 2)
        {
            buckets.Add((int)b);
        }

        for (long b = step; b <= max; b += step)
        {
            buckets.Add((int)b);
        }

        buckets.RemoveWhere(b => b < start);
        if (zero)
        {
            buckets.Add(0);
        }

        return [.. buckets];
    }

    /// <summary>
    /// The exponential strategy's range (exponential.py <c>warmup_range_with_limit</c>, contiguous paged attention off):
    /// <c>limit</c> values <c>min * (max / min)^(i / (limit - 1))</c>, each rounded up to a multiple of <c>step</c>, duplicates removed;
    /// <c>min</c> of 0 or 1 starts at <c>step</c> and adds that 0 or 1 as a bucket; the largest is capped at <c>max</c>; a limit of 1
    /// gives <c>[max]</c>. Example (exponential.py's docstring): min 128, step 128, max 2048, limit 10 gives
    /// 128, 256, 384, 512, 640, 896, 1152, 1536, 2048.
    /// </summary>
    public static int[] ExponentialRange(int min, int step, int max, int limit)
    {
        if (min < 0 || step < 1 || max < 1 || limit < 1)
        {
            throw new StackConfigException($"exponential buckets need min >= 0, step >= 1, max >= 1 and limit >= 1; got {min}, {step}, {max}, {limit}");
        }

        if (limit == 1)
        {
            return [max];
        }

        var origin = min;
        var addOrigin = min is 0 or 1;
        var bmin = addOrigin ? step : min;
        var buckets = new SortedSet<int>();
        for (var i = 0; i < limit; i++)
        {
            var unpadded = bmin * Math.Pow((double)max / bmin, 1.0 / (limit - 1) * i);
            buckets.Add((int)Math.Min(int.MaxValue, Math.Ceiling(unpadded / step) * step));
        }

        if (addOrigin)
        {
            buckets.Add(origin);
        }

        var sorted = buckets.ToArray();
        if (sorted[^1] > max)
        {
            sorted[^1] = max;
        }

        return sorted.Distinct().ToArray();
    }

    /// <summary>Reads vLLM on Gaudi's knobs; <paramref name="readFile"/> reads the file <c>VLLM_BUCKETING_FROM_FILE</c> names
    /// (the caller bounds its size and resolves the path).</summary>
    public static StackDeployment Resolve(StackKnobs knobs, DecodeConvention convention, Func<string, string>? readFile)
    {
        ArgumentNullException.ThrowIfNull(knobs);
        var notes = new List<string>();
        var blockSize = knobs.Int("block_size", 1, MaxTokens) ?? DefaultBlockSize;
        var maxModelLen = knobs.Int("max_model_len", 1, MaxTokens)
            ?? throw new StackConfigException($"{knobs.Source}: max_model_len is required (vLLM's --max-model-len, 1..{MaxTokens}): the decode block buckets grow with it");
        var maxNumSeqs = knobs.Int("max_num_seqs", 1, LensCsv.MaxBatch) ?? DefaultMaxNumSeqs;
        var maxNumBatchedTokens = knobs.Int("max_num_batched_tokens", 1, MaxTokens) ?? DefaultMaxNumBatchedTokens;
        var numBlocks = knobs.Int("num_gpu_blocks_override", 1, MaxTokens);
        var prefixCaching = knobs.Bool("enable_prefix_caching") ?? true;
        if (knobs.Bool("VLLM_CONTIGUOUS_PA") ?? !prefixCaching)
        {
            throw knobs.Bad(knobs.Has("VLLM_CONTIGUOUS_PA") ? "VLLM_CONTIGUOUS_PA" : "enable_prefix_caching",
                "selects contiguous paged attention, whose decode bucket is the highest block id of the batch (set by the allocator), not its " +
                "total blocks; LENS models non-contiguous paged attention: allowed VLLM_CONTIGUOUS_PA=false (the default with prefix caching on)");
        }

        var cap = (int)Math.Min(MaxTokens, ((long)maxModelLen + blockSize - 1) / blockSize); // ceil(max_model_len / block_size)
        var decode = new SortedSet<(int Bs, int Ctx)>();
        int[] query;
        if (knobs.Text("VLLM_BUCKETING_FROM_FILE") is { Length: > 0 } file)
        {
            if (readFile is null)
            {
                throw knobs.Bad("VLLM_BUCKETING_FROM_FILE", "names a file, and no file can be read here");
            }

            var text = readFile(file);
            var buckets = ReadBucketFile(text, file);
            query = [.. buckets.Where(b => b.Query != 1 && b.Bs == 1 && b.Ctx == 0 && b.Query <= maxModelLen && b.Query <= maxNumBatchedTokens)
                .Select(b => b.Query).Distinct().Order()];
            if (buckets.Any(b => b.Query != 1 && (b.Bs != 1 || b.Ctx != 0)))
            {
                notes.Add($"{file}: prompt buckets with batch above 1 or a cached context are not modelled (LENS prefill runs alone, at batch 1, from context 0); they are left out");
            }

            foreach (var (bs, _, ctx) in buckets.Where(b => b.Query == 1))
            {
                AddDecode(decode, bs, ctx, cap);
            }

            if (query.Length == 0)
            {
                throw new StackConfigException($"{file}: no prompt bucket (1, query, 0) with query in 2..min(max_model_len {maxModelLen}, max_num_batched_tokens {maxNumBatchedTokens}); add one per prefill length, e.g. (1, [128, 256, 512], 0)");
            }
        }
        else
        {
            var strategy = Strategy(knobs);
            if (strategy == "exp")
            {
                var overwritten = knobs.Keys.Where(k => k.StartsWith("VLLM_PROMPT_", StringComparison.Ordinal) || k.StartsWith("VLLM_DECODE_", StringComparison.Ordinal))
                    .Where(k => k.Contains("_BUCKET_", StringComparison.Ordinal) && k != "VLLM_PROMPT_QUERY_BUCKET_MIN").Order().ToArray();
                if (overwritten.Length > 0)
                {
                    notes.Add($"exponential bucketing overwrites {string.Join(", ", overwritten)} (exponential.py); set VLLM_BUCKETING_STRATEGY=lin to use them");
                }

                // exponential.py get_prompt_cfgs: query [block_size (or 1), block_size, max_num_batched_tokens, ceil(log2(max_num_batched_tokens))].
                var queryMin = knobs.Int("VLLM_PROMPT_QUERY_BUCKET_MIN", 0, MaxTokens) == 1 ? 1 : blockSize;
                query = ExponentialRange(queryMin, blockSize, maxNumBatchedTokens, Math.Max(1, CeilLog2(maxNumBatchedTokens)));

                // exponential.py get_decode_cfgs: bs [1, 2, max_num_seqs, ceil(log2 max_num_seqs) + 1];
                // blocks [1, max_num_seqs, ceil(max_model_len / block_size) * max_num_seqs (at most 3x the cache's blocks), ceil(log2) + 1].
                var bs = ExponentialRange(1, 2, maxNumSeqs, CeilLog2(maxNumSeqs) + 1);
                var maxBlocks = (long)cap * maxNumSeqs;
                if (numBlocks is { } n)
                {
                    maxBlocks = Math.Min(maxBlocks, 3L * n);
                }

                var maxDecodeBlocks = (int)Math.Min(MaxTokens, maxBlocks);
                var blocks = ExponentialRange(1, maxNumSeqs, maxDecodeBlocks, CeilLog2(maxDecodeBlocks) + 1);
                AddGrid(decode, bs, blocks, cap);
            }
            else
            {
                // linear.py get_prompt_cfgs / get_decode_cfgs with read_bucket_settings' defaults.
                var q = Setting(knobs, "PROMPT", "QUERY", blockSize, blockSize, maxNumBatchedTokens);
                query = Range(knobs, "VLLM_PROMPT_QUERY_BUCKET_STEP", q);
                var b = Setting(knobs, "DECODE", "BS", 1, 32, maxNumSeqs);
                var maxDecodeBlocks = (int)Math.Min(MaxTokens, Math.Max((long)maxModelLen * maxNumSeqs / blockSize, blockSize));
                var k = Setting(knobs, "DECODE", "BLOCK", 1, blockSize, maxDecodeBlocks);
                if (k.Min > k.Max)
                {
                    k = (Math.Max(1, k.Max - k.Step), k.Step, k.Max);
                }

                AddGrid(decode, Range(knobs, "VLLM_DECODE_BS_BUCKET_STEP", b), Range(knobs, "VLLM_DECODE_BLOCK_BUCKET_STEP", k), cap);
            }

            // common.py generate_buckets, prompt filters: query <= max_model_len and bs * query <= max_num_batched_tokens.
            query = [.. query.Where(x => x >= 1 && x <= maxModelLen && x <= maxNumBatchedTokens)];
            if (query.Length == 0)
            {
                throw new StackConfigException($"{knobs.Source}: no prompt bucket fits max_model_len {maxModelLen} and max_num_batched_tokens {maxNumBatchedTokens}");
            }
        }

        if (decode.Count == 0)
        {
            throw new StackConfigException($"{knobs.Source}: no decode bucket (batch, 1, blocks) with batch <= blocks; the stack generates none either (common.py raises 'Generated 0 decode buckets')");
        }

        var batch = decode.Select(d => d.Bs).Distinct().Order().ToArray();
        var blockBuckets = decode.Select(d => d.Ctx).Distinct().Order().ToArray();
        if (batch[^1] > LensCsv.MaxBatch)
        {
            throw new StackConfigException($"{knobs.Source}: decode batch bucket {batch[^1]} is above {LensCsv.MaxBatch}");
        }

        if (decode.Count < batch.Length * blockBuckets.Length)
        {
            notes.Add($"the stack compiles {decode.Count} of the {batch.Length} x {blockBuckets.Length} (batch, blocks) cells; the others are never chosen at runtime " +
                      "or run in the next block bucket the stack has (common.py caps a batch's blocks at batch x ceil(max_model_len / block_size))");
        }

        var buckets2 = BucketSet.Paged(query, blockBuckets, convention, batch);
        var policy = SchedulingPolicy.PagedDecode(blockSize, maxModelLen);
        return new StackDeployment("vllm-gaudi", buckets2, policy, notes);
    }

    /// <summary>
    /// Parses a <c>VLLM_BUCKETING_FROM_FILE</c> file (file_strategy.py): one bucket per line, <c>(batch, query, context)</c>, where any
    /// of the three may be an integer, a list <c>[a, b]</c> or <c>range(start, stop[, step])</c> (Python's: <c>stop</c> excluded),
    /// expanded to the Cartesian product; query 1 is a decode bucket (context in blocks), anything else a prompt bucket; blank lines
    /// and <c>#</c> comments skipped. The stack skips a line it cannot parse with a warning; LENS refuses it, naming the line.
    /// </summary>
    public static IReadOnlyList<(int Bs, int Query, int Ctx)> ReadBucketFile(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        var result = new List<(int, int, int)>();
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var where = $"{source}:{i + 1}";
            var parts = SplitTuple(line, where);
            var x = Values(parts[0], where, "batch");
            var y = Values(parts[1], where, "query");
            var z = Values(parts[2], where, "context");
            if ((long)x.Length * y.Length * z.Length + result.Count > MaxFileBuckets)
            {
                throw new StackConfigException($"{where}: more than {MaxFileBuckets} buckets in the file");
            }

            foreach (var a in x)
            {
                foreach (var b in y)
                {
                    foreach (var c in z)
                    {
                        result.Add((a, b, c));
                    }
                }
            }
        }

        return result;
    }

    private static string Strategy(StackKnobs knobs)
    {
        if (knobs.Bool("VLLM_EXPONENTIAL_BUCKETING") is { } exp)
        {
            return exp ? "exp" : "lin";
        }

        var strategy = knobs.Text("VLLM_BUCKETING_STRATEGY")?.Trim().ToLowerInvariant() ?? "exp";
        return strategy switch
        {
            "exp" or "lin" => strategy,
            "pad" => throw knobs.Bad("VLLM_BUCKETING_STRATEGY", "is pad (padding-aware), which LENS does not generate yet; allowed exp or lin, or list the buckets with VLLM_BUCKETING_FROM_FILE"),
            _ => throw knobs.Bad("VLLM_BUCKETING_STRATEGY", $"is '{strategy}'; allowed exp (the default) or lin"),
        };
    }

    /// <summary>linear.py <c>read_bucket_settings</c>: <c>VLLM_{PHASE}_{DIM}_BUCKET_{MIN,STEP,MAX}</c>, with the deprecated <c>SEQ</c> name
    /// as the fallback of <c>QUERY</c>.</summary>
    private static (int Min, int Step, int Max) Setting(StackKnobs knobs, string phase, string dim, int min, int step, int max)
    {
        int Read(string param, int fallback)
        {
            var key = $"VLLM_{phase}_{dim}_BUCKET_{param}";
            if (!knobs.Has(key) && dim == "QUERY")
            {
                key = $"VLLM_{phase}_SEQ_BUCKET_{param}";
            }

            return knobs.Int(key, param == "STEP" ? 1 : 0, MaxTokens) ?? fallback;
        }

        var result = (Min: Read("MIN", min), Step: Read("STEP", step), Max: Read("MAX", max));
        if (result.Min > result.Max && !(phase == "DECODE" && dim == "BLOCK"))
        {
            var key = $"VLLM_{phase}_{dim}_BUCKET_MIN";
            throw new StackConfigException($"{knobs.Where(key)}: {key} {result.Min} is above the maximum {result.Max}; allowed 0..{result.Max}");
        }

        return result;
    }

    private static int[] Range(StackKnobs knobs, string stepKey, (int Min, int Step, int Max) setting)
    {
        try
        {
            return LinearRange(setting.Min, setting.Step, setting.Max);
        }
        catch (StackConfigException ex)
        {
            throw new StackConfigException($"{knobs.Where(stepKey)}: {stepKey.Replace("_STEP", "_{MIN,STEP,MAX}", StringComparison.Ordinal)}: {ex.Message}");
        }
    }

    private static void AddGrid(SortedSet<(int, int)> decode, int[] bs, int[] blocks, int cap)
    {
        if ((long)bs.Length * blocks.Length > MaxDecodeCells)
        {
            throw new StackConfigException($"{bs.Length} batch buckets x {blocks.Length} block buckets is over {MaxDecodeCells} decode cells; raise the bucket steps");
        }

        foreach (var b in bs)
        {
            foreach (var k in blocks)
            {
                AddDecode(decode, b, k, cap);
            }
        }
    }

    /// <summary>common.py's decode filter (batch <c>&lt;=</c> blocks) and correction (blocks at most batch x ceil(max_model_len / block_size)).</summary>
    private static void AddDecode(SortedSet<(int, int)> decode, int bs, int ctx, int cap)
    {
        if (bs >= 1 && bs <= ctx)
        {
            decode.Add((bs, (int)Math.Min(ctx, (long)bs * cap)));
        }
    }

    private static int CeilLog2(int n) => n <= 1 ? 0 : (int)Math.Ceiling(Math.Log2(n));

    private static string[] SplitTuple(string line, string where)
    {
        if (line.Length < 2 || line[0] != '(' || line[^1] != ')')
        {
            throw new StackConfigException($"{where}: expected a bucket (batch, query, context), e.g. (1, [256, 512], 0) or (64, 1, range(256, 512, 32)); got '{Clip(line)}'");
        }

        var inner = line[1..^1];
        var parts = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i < inner.Length; i++)
        {
            switch (inner[i])
            {
                case '[' or '(':
                    depth++;
                    break;
                case ']' or ')':
                    depth--;
                    break;
                case ',' when depth == 0:
                    parts.Add(inner[start..i].Trim());
                    start = i + 1;
                    break;
            }
        }

        parts.Add(inner[start..].Trim());
        if (parts.Count == 4 && parts[3].Length == 0)
        {
            parts.RemoveAt(3);
        }

        return parts.Count == 3 && depth == 0
            ? [.. parts]
            : throw new StackConfigException($"{where}: expected three fields (batch, query, context); got '{Clip(line)}'");
    }

    private static int[] Values(string field, string where, string what)
    {
        int Parse(string s)
        {
            return int.TryParse(s.Trim(), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var v) && v is >= 0 and <= MaxTokens
                ? v
                : throw new StackConfigException($"{where}: {what} '{Clip(s.Trim())}' is not an integer in 0..{MaxTokens}");
        }

        if (field.StartsWith("range(", StringComparison.Ordinal) && field.EndsWith(')'))
        {
            var args = field[6..^1].Split(',').Select(Parse).ToArray();
            if (args.Length is < 2 or > 3 || (args.Length == 3 && args[2] < 1))
            {
                throw new StackConfigException($"{where}: {what} {field}: expected range(start, stop) or range(start, stop, step) with step >= 1");
            }

            var step = args.Length == 3 ? args[2] : 1;
            var count = Math.Max(0, (args[1] - args[0] + step - 1) / step);
            return count > 10_000 // file_strategy.py _MAX_RANGE_ELEMENTS
                ? throw new StackConfigException($"{where}: {what} {field} has {count} values; allowed at most 10000")
                : [.. Enumerable.Range(0, count).Select(k => args[0] + (k * step))];
        }

        if (field.StartsWith('[') && field.EndsWith(']'))
        {
            var items = field[1..^1].Split(',', StringSplitOptions.RemoveEmptyEntries);
            return items.Length == 0 ? throw new StackConfigException($"{where}: {what} list is empty") : [.. items.Select(Parse)];
        }

        return [Parse(field)];
    }

    private static string Clip(string text) => text.Length <= 60 ? text : text[..57] + "...";
}
