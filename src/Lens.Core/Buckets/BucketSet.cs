using System.Collections.Immutable;
using System.Runtime.InteropServices;

namespace Lens.Core;

/// <summary>
/// Which sequence length picks the decode bucket of step <c>k</c> (method.md, "Terms").
/// The step's bucket length is <c>I + k + offset</c>, where the offset is the enum's value.
/// </summary>
public enum DecodeConvention
{
    /// <summary>Step <c>k</c> runs at length <c>I + k</c> (the sequence length after appending): <c>dec(I + k)</c>.</summary>
    AfterAppend = 0,

    /// <summary>The engine picks by the KV length before appending: <c>dec(I + k - 1)</c>, one token earlier.</summary>
    BeforeAppend = -1,
}

/// <summary>Whether a bucket is a prefill (context-encoding) or decode (token-generation) bucket.</summary>
public enum BucketKind
{
    Prefill,
    Decode,
}

/// <summary>
/// One bucket, named by its kind, its upper edge (the compiled length) and, for decode buckets, its batch bucket (the compiled batch
/// size; method.md, "Batched serving"). Prefill always runs at context batch 1.
/// </summary>
public readonly record struct BucketId(BucketKind Kind, int Edge, int Batch = 1)
{
    /// <summary>
    /// Stable text form, e.g. <c>prefill-128</c>, <c>decode-1024</c>, or <c>decode-1024-b8</c> for batch bucket 8; safe in file names and
    /// storage keys. Batch 1 has no suffix, so every name of a batch-1 deployment is what it was before the batch axis.
    /// </summary>
    public override string ToString() =>
        $"{(Kind == BucketKind.Prefill ? "prefill" : "decode")}-{Edge}{(Batch > 1 ? $"-b{Batch}" : "")}";

    public static BucketId Parse(string text)
    {
        if (!TryParse(text, out var id))
        {
            throw new FormatException($"'{text}' is not a bucket id; expected prefill-N, decode-N or decode-N-bB with N and B positive integers.");
        }

        return id;
    }

    public static bool TryParse(string? text, out BucketId id)
    {
        id = default;
        if (string.IsNullOrWhiteSpace(text) || text.Length > 64)
        {
            return false;
        }

        var dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0)
        {
            return false;
        }

        var rest = text.AsSpan(dash + 1);
        var batch = 1;
        var suffix = rest.IndexOf("-b", StringComparison.OrdinalIgnoreCase);
        if (suffix >= 0)
        {
            if (!int.TryParse(rest[(suffix + 2)..], System.Globalization.NumberStyles.None, null, out batch) || batch <= 0)
            {
                return false;
            }

            rest = rest[..suffix];
        }

        if (!int.TryParse(rest, System.Globalization.NumberStyles.None, null, out var edge) || edge <= 0)
        {
            return false;
        }

        var kind = text[..dash];
        if (kind.Equals("prefill", StringComparison.OrdinalIgnoreCase) && batch == 1)
        {
            id = new BucketId(BucketKind.Prefill, edge);
            return true;
        }

        if (kind.Equals("decode", StringComparison.OrdinalIgnoreCase))
        {
            id = new BucketId(BucketKind.Decode, edge, batch);
            return true;
        }

        return false;
    }
}

/// <summary>
/// The prefill buckets <c>P = p1 &lt; ... &lt; pm</c>, decode buckets <c>D = d1 &lt; ... &lt; dn</c> and batch buckets
/// <c>B = b1 &lt; ... &lt; bk</c> (compiled batch sizes; <c>bk</c> is max_num_seqs; <c>[1]</c> for a deployment that serves one
/// request at a time) of one compiled deployment, with the decode convention. <c>pre(I) = min{p in P : p &gt;= I}</c>; decode step
/// <c>k</c> uses <c>dec(I + k + offset)</c> (method.md, "Terms"); a decode step of <c>n</c> sequences runs at batch bucket
/// <c>bat(n) = min{b in B : b &gt;= n}</c> (method.md, "Batched serving"). Immutable and validated on construction.
/// </summary>
public sealed class BucketSet : IEquatable<BucketSet>
{
    private readonly int[] _prefill;
    private readonly int[] _decode;
    private readonly int[] _batch; // never written after construction: the ImmutableArray views below share them without a copy

    public BucketSet(IEnumerable<int> prefill, IEnumerable<int> decode, DecodeConvention convention = DecodeConvention.AfterAppend,
        IEnumerable<int>? batch = null)
        : this(prefill, decode, convention, batch, decodeInBlocks: false)
    {
    }

    private BucketSet(IEnumerable<int> prefill, IEnumerable<int> decode, DecodeConvention convention, IEnumerable<int>? batch, bool decodeInBlocks)
    {
        ArgumentNullException.ThrowIfNull(prefill);
        ArgumentNullException.ThrowIfNull(decode);
        _prefill = [.. prefill];
        _decode = [.. decode];
        _batch = batch is null ? [1] : [.. batch];
        Validate(_prefill, "prefill");
        Validate(_decode, "decode");
        Validate(_batch, "batch");
        DecodeInBlocks = decodeInBlocks;
        if (!decodeInBlocks && _prefill[^1] > _decode[^1])
        {
            throw new BucketSetException(
                $"the longest prompt (prefill bucket {_prefill[^1]}) is above the longest sequence (decode bucket {_decode[^1]}); " +
                "every prompt must fit in a decode bucket");
        }

        if (!Enum.IsDefined(convention))
        {
            throw new BucketSetException($"decode convention {(int)convention} is not one of {string.Join(", ", Enum.GetNames<DecodeConvention>())}");
        }

        Convention = convention;
    }

    /// <summary>
    /// Paged execution (vLLM on Gaudi; <see cref="SchedulingPolicy"/>): the decode buckets are block buckets, counted in KV blocks of the
    /// batch, so the rule "longest prompt &lt;= longest decode bucket" does not apply and <see cref="MaxSequence"/> is the KV capacity in
    /// blocks; a deployment's bound on <c>I + O</c> is then its policy's (<see cref="DeploymentModel.CheckRequest"/>).
    /// </summary>
    public static BucketSet Paged(IEnumerable<int> prefill, IEnumerable<int> blockBuckets, DecodeConvention convention = DecodeConvention.AfterAppend,
        IEnumerable<int>? batch = null) => new(prefill, blockBuckets, convention, batch, decodeInBlocks: true);

    /// <summary>Whether the decode buckets count KV blocks (paged execution, <see cref="Paged"/>) rather than tokens.</summary>
    public bool DecodeInBlocks { get; }

    /// <summary>Prefill bucket edges, ascending.</summary>
    public ImmutableArray<int> Prefill => ImmutableCollectionsMarshal.AsImmutableArray(_prefill);

    /// <summary>Decode bucket edges, ascending.</summary>
    public ImmutableArray<int> Decode => ImmutableCollectionsMarshal.AsImmutableArray(_decode);

    /// <summary>Batch bucket sizes, ascending; <c>[1]</c> when the deployment serves one request at a time.</summary>
    public ImmutableArray<int> Batch => ImmutableCollectionsMarshal.AsImmutableArray(_batch);

    /// <summary>Whether the deployment has compiled batch sizes other than a single <c>[1]</c>.</summary>
    public bool IsBatched => _batch.Length > 1 || _batch[0] != 1;

    /// <summary>The most sequences in flight at once (max_num_seqs): the largest batch bucket.</summary>
    public int MaxBatch => _batch[^1];

    public DecodeConvention Convention { get; }

    /// <summary>Longest prompt, <c>pm</c>.</summary>
    public int MaxPrompt => _prefill[^1];

    /// <summary>Longest sequence, <c>dn</c>: a request needs <c>I + O &lt;= dn</c>.</summary>
    public int MaxSequence => _decode[^1];

    internal ReadOnlySpan<int> PrefillSpan => _prefill;

    internal ReadOnlySpan<int> DecodeSpan => _decode;

    /// <summary>Index of <c>bat(n)</c> in <see cref="Batch"/>, or -1 when <c>n</c> is above the largest batch bucket.</summary>
    public int BatchIndex(int sequences) => FirstAtOrAbove(_batch, sequences);

    /// <summary>The same buckets with other batch buckets (null: <c>[1]</c>).</summary>
    public BucketSet WithBatch(IEnumerable<int>? batch) => new(_prefill, _decode, Convention, batch, DecodeInBlocks);

    /// <summary>Index of <c>pre(I)</c> in <see cref="Prefill"/>, or -1 when <c>I</c> is above the longest prompt.</summary>
    public int PrefillIndex(int inputLength) => FirstAtOrAbove(_prefill, inputLength);

    /// <summary>Index of <c>dec(length)</c> in <see cref="Decode"/>, or -1 above the longest sequence.</summary>
    public int DecodeIndex(int length) => FirstAtOrAbove(_decode, length);

    /// <summary>The decode-bucket length of step <c>k</c> of a request with prompt length <c>I</c>.</summary>
    public int StepLength(int inputLength, int step) => inputLength + step + (int)Convention;

    /// <summary>Lower edge (exclusive) of decode bucket <paramref name="index"/>: <c>d(j-1)</c>, with <c>d0 = 0</c>.</summary>
    public int DecodeLowerEdge(int index) => index == 0 ? 0 : _decode[index - 1];

    /// <summary>Lower edge (exclusive) of prefill bucket <paramref name="index"/>: <c>p(i-1)</c>, with <c>p0 = 0</c>.</summary>
    public int PrefillLowerEdge(int index) => index == 0 ? 0 : _prefill[index - 1];

    /// <summary>
    /// Checks that a request of <c>I</c> prompt and <c>O</c> output tokens can be served:
    /// <c>I &gt;= 1</c>, <c>O &gt;= 1</c>, <c>I &lt;= pm</c>, <c>I + O &lt;= dn</c>. Returns null when valid, else the reason.
    /// </summary>
    public string? CheckRequest(int inputLength, int outputLength)
    {
        if (inputLength < 1)
        {
            return $"input length {inputLength} is below 1";
        }

        if (outputLength < 1)
        {
            return $"output length {outputLength} is below 1";
        }

        if (inputLength > MaxPrompt)
        {
            return $"input length {inputLength} is above the longest prefill bucket {MaxPrompt} (allowed 1..{MaxPrompt})";
        }

        if ((long)inputLength + outputLength > MaxSequence)
        {
            return $"input length {inputLength} + output length {outputLength} = {(long)inputLength + outputLength} " +
                   $"is above the longest decode bucket {MaxSequence} (allowed I + O <= {MaxSequence})";
        }

        return null;
    }

    /// <summary>Throws <see cref="RequestOutOfRangeException"/> unless <see cref="CheckRequest"/> passes.</summary>
    public void EnsureRequest(int inputLength, int outputLength)
    {
        if (CheckRequest(inputLength, outputLength) is { } reason)
        {
            throw new RequestOutOfRangeException(reason);
        }
    }

    /// <summary>All buckets: prefill first, then decode, each ascending; decode buckets batch bucket by batch bucket.</summary>
    public IEnumerable<BucketId> AllBuckets()
    {
        foreach (var p in _prefill)
        {
            yield return new BucketId(BucketKind.Prefill, p);
        }

        foreach (var b in _batch)
        {
            foreach (var d in _decode)
            {
                yield return new BucketId(BucketKind.Decode, d, b);
            }
        }
    }

    public bool Contains(BucketId bucket) =>
        bucket.Kind == BucketKind.Prefill
            ? bucket.Batch == 1 && Array.BinarySearch(_prefill, bucket.Edge) >= 0
            : Array.BinarySearch(_decode, bucket.Edge) >= 0 && Array.BinarySearch(_batch, bucket.Batch) >= 0;

    /// <summary>Compact text form, e.g. <c>P=128,256 D=128,256,512 after-append</c>, with <c> B=1,2,4</c> when batched.</summary>
    public override string ToString() =>
        $"P={string.Join(',', _prefill)} {(DecodeInBlocks ? "blocks" : "D")}={string.Join(',', _decode)}{(IsBatched ? $" B={string.Join(',', _batch)}" : "")} " +
        $"{(Convention == DecodeConvention.AfterAppend ? "after-append" : "before-append")}";

    public bool Equals(BucketSet? other) =>
        other is not null && Convention == other.Convention && DecodeInBlocks == other.DecodeInBlocks && _prefill.AsSpan().SequenceEqual(other._prefill) &&
        _decode.AsSpan().SequenceEqual(other._decode) && _batch.AsSpan().SequenceEqual(other._batch);

    public override bool Equals(object? obj) => Equals(obj as BucketSet);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Convention);
        hash.Add(DecodeInBlocks);
        foreach (var p in _prefill)
        {
            hash.Add(p);
        }

        hash.Add(-1);
        foreach (var d in _decode)
        {
            hash.Add(d);
        }

        hash.Add(-2);
        foreach (var b in _batch)
        {
            hash.Add(b);
        }

        return hash.ToHashCode();
    }

    /// <summary>Parses a comma-separated list of edges, e.g. <c>128,256,512</c>, naming <paramref name="what"/> in errors.</summary>
    public static int[] ParseEdges(string text, string what)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new BucketSetException($"{what} buckets are empty; give a comma-separated list such as 128,256,512");
        }

        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var edges = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.AllowLeadingSign, null, out edges[i]))
            {
                throw new BucketSetException($"{what} bucket #{i + 1} '{parts[i]}' is not an integer");
            }
        }

        return edges;
    }

    private static void Validate(int[] edges, string what)
    {
        if (edges.Length == 0)
        {
            throw new BucketSetException($"{what} buckets are empty; at least one bucket is needed");
        }

        for (var i = 0; i < edges.Length; i++)
        {
            if (edges[i] <= 0)
            {
                throw new BucketSetException($"{what} bucket #{i + 1} is {edges[i]}; bucket lengths must be positive");
            }

            if (i > 0 && edges[i] == edges[i - 1])
            {
                throw new BucketSetException($"{what} bucket {edges[i]} appears twice (#{i} and #{i + 1}); buckets must be distinct");
            }

            if (i > 0 && edges[i] < edges[i - 1])
            {
                throw new BucketSetException(
                    $"{what} buckets are not ascending: #{i} is {edges[i - 1]}, #{i + 1} is {edges[i]}; list them from shortest to longest");
            }
        }
    }

    private static int FirstAtOrAbove(int[] edges, int length)
    {
        // Lower bound by hand: buckets are short arrays, and this sits on the prediction hot path.
        int lo = 0, hi = edges.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (edges[mid] < length)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo == edges.Length ? -1 : lo;
    }
}

/// <summary>A bucket set that breaks a rule (empty, non-positive, unsorted, duplicate, prompt above sequence).</summary>
public sealed class BucketSetException(string message) : ArgumentException(message);

/// <summary>A request outside what a deployment serves (I or O below 1, beyond the largest bucket).</summary>
public sealed class RequestOutOfRangeException(string message) : ArgumentOutOfRangeException(null, message);
