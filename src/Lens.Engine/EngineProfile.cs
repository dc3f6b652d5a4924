using System.Text.Json;
using System.Text.Json.Serialization;
using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// What a <see cref="ReferenceEngine"/> is: the model's size, its seeded weights, threads, the compiled bucket sets and the decode
/// convention, plus optional per-bucket slowdowns. Stored as camelCase JSON, e.g.
/// <code>
/// { "name": "tiny", "layers": 2, "hidden": 64, "heads": 4, "kvHeads": 2, "ffn": 128, "vocab": 256, "seed": 1, "threads": 1,
///   "prefillBuckets": [16, 32, 64], "decodeBuckets": [16, 32, 64, 128], "convention": "after-append",
///   "slowdown": { "decode-64": 1.5 } }
/// </code>
/// A slowdown multiplier <c>m &gt;= 1</c> makes each step of its bucket take <c>m</c> times its own time (a busy wait after it)
/// (used to simulate drift of one bucket): <c>decode-N</c> at every batch bucket, <c>decode-N-bB</c> in one (batch, length) cell only.
/// <c>batchBuckets</c> (default <c>[1]</c>) are the compiled decode batch sizes; the largest
/// is <c>max_num_seqs</c> (method.md, "Batched serving"). <c>policy</c> (absent: prefill-first padded) is the scheduler, as
/// Lens.Core's <see cref="SchedulingPolicy"/> (method.md, "Scheduling policies"), with that type's axes:
/// <list type="bullet">
/// <item><c>{ "scheduler": "chunked", "maxNumBatchedTokens": 32, "tokenBuckets": [8, 16, 32], "maxNumSeqs": 4 }</c>: mixed steps
/// over token buckets and context buckets, which are the <c>decodeBuckets</c>; <c>batchBuckets</c> stay <c>[1]</c>;</item>
/// <item><c>{ "execution": "paged", "blockSize": 4, "maxModelLen": 128 }</c>: prefill-first, decode steps over batch buckets and
/// block buckets, which are the <c>decodeBuckets</c> counted in blocks of <c>blockSize</c> tokens; the KV capacity is the largest
/// block bucket.</item>
/// </list>
/// </summary>
public sealed record EngineProfile
{
    /// <summary>Largest number of weights (floats) an engine may hold: 1 GiB of memory.</summary>
    public const long MaxParameters = 1L << 28;

    /// <summary>Largest batch bucket (<c>max_num_seqs</c>).</summary>
    public const int MaxBatch = 256;

    /// <summary>Largest KV cache (floats, every sequence slot and bucket buffer together) an engine may hold: 2 GiB of memory.</summary>
    public const long MaxCacheFloats = 1L << 29;

    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    /// <summary>The model id the server lists and accepts.</summary>
    public string Name { get; init; } = "";

    /// <summary>Transformer layers (1..64).</summary>
    public int Layers { get; init; }

    /// <summary>Hidden size (8..8192), a multiple of <see cref="Heads"/> with an even head size.</summary>
    public int Hidden { get; init; }

    /// <summary>Query heads (1..256).</summary>
    public int Heads { get; init; }

    /// <summary>Key/value heads for grouped-query attention (1..heads, dividing heads).</summary>
    public int KvHeads { get; init; }

    /// <summary>SwiGLU intermediate size (1..65536).</summary>
    public int Ffn { get; init; }

    /// <summary>Vocabulary size (2..1,000,000); the LM head is tied to the embedding.</summary>
    public int Vocab { get; init; }

    /// <summary>Seed of the random weights and of synthetic prompts.</summary>
    public int Seed { get; init; }

    /// <summary>Compute threads (1..256); 1 is the quietest and the default.</summary>
    public int Threads { get; init; } = 1;

    public int[] PrefillBuckets { get; init; } = [];

    public int[] DecodeBuckets { get; init; } = [];

    public DecodeConvention Convention { get; init; } = DecodeConvention.AfterAppend;

    /// <summary>
    /// Compiled decode batch sizes, ascending, each 1..<see cref="MaxBatch"/>; the largest is <c>max_num_seqs</c>. A decode step
    /// with <c>n</c> sequences in flight runs at the smallest batch bucket <c>&gt;= n</c>. <c>[1]</c>: one request at a time.
    /// </summary>
    public int[] BatchBuckets { get; init; } = [1];

    /// <summary>The scheduling policy; null (absent) means prefill-first padded, as every profile before policies.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SchedulingPolicy? Policy { get; init; }

    /// <summary><see cref="Policy"/>, or the default policy when absent.</summary>
    [JsonIgnore]
    public SchedulingPolicy EffectivePolicy => Policy ?? SchedulingPolicy.Default;

    /// <summary>The most sequences in flight: the chunked policy's <c>maxNumSeqs</c>, else the largest batch bucket.</summary>
    [JsonIgnore]
    public int MaxNumSeqs => EffectivePolicy.Scheduler == SchedulerKind.Chunked ? EffectivePolicy.MaxNumSeqs
        : BatchBuckets is { Length: > 0 } b ? b[^1] : 0;

    /// <summary>Bucket id (<see cref="BucketId.ToString"/>, e.g. <c>decode-512</c>) -> time multiplier (1..100).</summary>
    public Dictionary<string, double>? Slowdown { get; init; }

    /// <summary>Head size <c>hidden / heads</c>.</summary>
    [JsonIgnore]
    public int HeadDim => Heads == 0 ? 0 : Hidden / Heads;

    /// <summary>Reads and validates a profile file; errors name the file and the field.</summary>
    public static EngineProfile Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new EngineProfileException(path, null, $"cannot read the engine profile: {ex.Message}", ex);
        }

        return Parse(json, path);
    }

    /// <summary>Parses and validates a profile; <paramref name="source"/> names it in errors.</summary>
    public static EngineProfile Parse(string json, string source = "engine profile")
    {
        EngineProfile? profile;
        try
        {
            profile = JsonSerializer.Deserialize<EngineProfile>(json, Options);
        }
        catch (JsonException ex)
        {
            throw new EngineProfileException(source, ex.Path, $"not a valid engine profile: {ex.Message}", ex);
        }

        if (profile is null)
        {
            throw new EngineProfileException(source, null, "the engine profile is empty (null)");
        }

        profile.Validate(source);
        return profile;
    }

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    /// <summary>Checks every field; returns the bucket set.</summary>
    /// <exception cref="EngineProfileException">Names the first bad field and its allowed range.</exception>
    public BucketSet Validate(string source = "engine profile")
    {
        if (string.IsNullOrWhiteSpace(Name) || Name.Length > 128 || Name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            throw Bad(source, "name", $"is '{Name}'; give 1..128 characters without spaces");
        }

        Range(source, "layers", Layers, 1, 64);
        Range(source, "hidden", Hidden, 8, 8192);
        Range(source, "heads", Heads, 1, 256);
        Range(source, "kvHeads", KvHeads, 1, Heads);
        Range(source, "ffn", Ffn, 1, 65536);
        Range(source, "vocab", Vocab, 2, 1_000_000);
        Range(source, "threads", Threads, 1, 256);
        if (Hidden % Heads != 0 || (Hidden / Heads) % 2 != 0)
        {
            throw Bad(source, "hidden", $"is {Hidden}; it must be a multiple of heads ({Heads}) with an even head size (rotary pairs)");
        }

        if (Heads % KvHeads != 0)
        {
            throw Bad(source, "kvHeads", $"is {KvHeads}; it must divide heads ({Heads})");
        }

        if (!Enum.IsDefined(Convention))
        {
            throw Bad(source, "convention", $"is {(int)Convention}; allowed after-append, before-append");
        }

        var parameters = ParameterCount;
        if (parameters > MaxParameters)
        {
            throw Bad(source, "hidden", $"the model has {parameters:N0} weights; at most {MaxParameters:N0} are allowed (1 GiB)");
        }

        BucketSet buckets;
        try
        {
            buckets = EffectivePolicy.Execution == ExecutionKind.Paged
                ? BucketSet.Paged(PrefillBuckets ?? [], DecodeBuckets ?? [], Convention)
                : new BucketSet(PrefillBuckets ?? [], DecodeBuckets ?? [], Convention);
        }
        catch (BucketSetException ex)
        {
            var field = ex.Message.StartsWith("decode", StringComparison.Ordinal) ? "decodeBuckets" : "prefillBuckets";
            throw new EngineProfileException(source, field, ex.Message, ex);
        }

        if (buckets.MaxSequence > 65536)
        {
            throw Bad(source, "decodeBuckets", $"the longest bucket is {buckets.MaxSequence}; allowed up to 65536");
        }

        ValidateBatchBuckets(source);
        EnginePolicy.Validate(this, buckets, source);
        var cache = CacheFloats(buckets);
        if (cache > MaxCacheFloats)
        {
            throw Bad(source, "batchBuckets",
                $"the KV caches of {MaxNumSeqs} sequences over every decode bucket need {cache:N0} floats; at most {MaxCacheFloats:N0} " +
                "are allowed (2 GiB): fewer sequences, layers or decode buckets");
        }

        foreach (var (key, value) in Slowdown ?? [])
        {
            if (!BucketId.TryParse(key, out var id) || !buckets.Contains(id with { Batch = 1 }) ||
                (id.Kind == BucketKind.Decode && Array.IndexOf(BatchBuckets, id.Batch) < 0))
            {
                throw Bad(source, $"slowdown.{key}",
                    $"'{key}' is not a bucket of this profile; use prefill-N or decode-N (every batch bucket), or decode-N-bB (one cell), with N " +
                    $"one of the profile's buckets ({buckets}) and B one of its batch buckets ({string.Join(',', BatchBuckets)})");
            }

            if (!double.IsFinite(value) || value < 1 || value > 100)
            {
                throw Bad(source, $"slowdown.{key}", $"is {value}; a slowdown multiplier must be within 1..100");
            }
        }

        return buckets;
    }

    /// <summary>Weights in the model: embedding (tied LM head), per layer attention, MLP and norms, final norm.</summary>
    [JsonIgnore]
    public long ParameterCount
    {
        get
        {
            long h = Hidden, kv = (long)KvHeads * HeadDim;
            var perLayer = (2 * h * h) + (2 * h * kv) + (3 * h * Ffn) + (2 * h);
            return ((long)Vocab * h) + (Layers * perLayer) + h;
        }
    }

    /// <summary>
    /// Floats the engine's KV caches take: one staging buffer per sequence slot for its prefill, plus one buffer per decode bucket
    /// for each slot (and one more slot for padded rows and warm-up).
    /// </summary>
    private long CacheFloats(BucketSet buckets)
    {
        long perPosition = 2L * Layers * KvHeads * HeadDim;
        long spans = 0;
        if (EffectivePolicy.Execution == ExecutionKind.Paged)
        {
            spans = EnginePolicy.PagedSpan(EffectivePolicy, buckets) + 1L;
        }
        else
        {
            foreach (var d in buckets.Decode)
            {
                spans += d + 1;
            }
        }

        return (MaxNumSeqs + 1L) * perPosition * (spans + buckets.MaxPrompt);
    }

    private void ValidateBatchBuckets(string source)
    {
        if (BatchBuckets is not { Length: > 0 } batches)
        {
            throw Bad(source, "batchBuckets", $"is empty; give ascending batch sizes within 1..{MaxBatch}, e.g. [1, 2, 4, 8]");
        }

        for (var i = 0; i < batches.Length; i++)
        {
            if (batches[i] < 1 || batches[i] > MaxBatch)
            {
                throw Bad(source, "batchBuckets", $"holds {batches[i]}; batch sizes must be within 1..{MaxBatch}");
            }

            if (i > 0 && batches[i] <= batches[i - 1])
            {
                throw Bad(source, "batchBuckets", $"must be strictly ascending; {batches[i]} follows {batches[i - 1]}");
            }
        }
    }

    internal static void Range(string source, string field, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            throw Bad(source, field, $"is {value}; allowed {min}..{max}");
        }
    }

    internal static EngineProfileException Bad(string source, string field, string message) => new(source, field, $"'{field}' {message}");
}

/// <summary>An engine profile that cannot be read or breaks a rule; names the file (or source) and the field.</summary>
public sealed class EngineProfileException(string source, string? field, string message, Exception? inner = null)
    : Exception($"{source}: {message}", inner)
{
    /// <summary>The file or source of the profile.</summary>
    public string ProfileSource { get; } = source;

    /// <summary>The offending field (camelCase JSON name), where one is known.</summary>
    public string? Field { get; } = field;
}

/// <summary>The profiles shipped with the engine, copied to <c>profiles/NAME.json</c> next to the assembly.</summary>
public static class EngineProfiles
{
    /// <summary>Shipped profile names.</summary>
    public static readonly IReadOnlyList<string> Names = ["tiny", "nxdi-small", "linear-small", "tiny-batch", "nxdi-small-batch", "tiny-chunked", "tiny-paged", "small-chunked",
        "small-paged", "nxdi-small-chunked", "nxdi-small-paged"];

    /// <summary>
    /// The path of a shipped profile, e.g. <c>Path("tiny")</c>; looks next to this assembly, then in the app's base folder.
    /// </summary>
    public static string Path(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var file = name.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? name : name + ".json";
        var here = System.IO.Path.GetDirectoryName(typeof(EngineProfiles).Assembly.Location);
        foreach (var root in new[] { here, AppContext.BaseDirectory })
        {
            if (string.IsNullOrEmpty(root))
            {
                continue;
            }

            var candidate = System.IO.Path.Combine(root, "profiles", file);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException(
            $"no shipped engine profile '{name}' (known: {string.Join(", ", Names)}); looked in profiles/ next to Lens.Engine and the app",
            file);
    }

    /// <summary>Loads a shipped profile by name.</summary>
    public static EngineProfile Load(string name) => EngineProfile.Load(Path(name));
}
