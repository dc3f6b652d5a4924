namespace Lens.Core;

/// <summary>What a planned point measures.</summary>
public enum PlanRole
{
    /// <summary>Prefill only (<c>O = 1</c>) at the start of a decode bucket: with <see cref="Slope"/> it gives <c>A[pre(I)]</c>.</summary>
    Intercept,

    /// <summary>The long request of a decode bucket's pair; its steps beyond the short one all fall in the bucket.</summary>
    Slope,

    /// <summary>The short request of a pair whose steps start below the bucket (beyond the longest prompt).</summary>
    Base,

    /// <summary>A prefill bucket no decode pair covers: <c>O = 1</c> at its lower and upper end (the plateau check).</summary>
    Prefill,
}

/// <summary>Options of <see cref="ProfilingPlanner"/>.</summary>
/// <param name="Repeats">Times each point is measured (1 = the paper's two measurements per bucket).</param>
/// <param name="MaxSpan">Cap on <c>Ob - Oa</c> to bound device time; null spans the whole bucket (best slope).</param>
/// <param name="Seed">Seed of the interleaving; the same seed gives the same order.</param>
public sealed record PlanOptions(int Repeats = 1, int? MaxSpan = null, int Seed = 0)
{
    public const int MaxRepeats = 1000;

    internal void Validate()
    {
        if (Repeats is < 1 or > MaxRepeats)
        {
            throw new PlanException($"repeats must be in 1..{MaxRepeats}; got {Repeats}");
        }

        if (MaxSpan is < 1)
        {
            throw new PlanException($"max span must be at least 1 decode step; got {MaxSpan}");
        }
    }
}

/// <summary>
/// One planned point: the bucket it profiles, its lengths, which repeat, its role, and how many identical requests are released at
/// once as one group (<paramref name="Batch"/>: the decode bucket's batch bucket; 1 for single requests).
/// </summary>
public readonly record struct PlanRow(BucketId Bucket, int InputLength, int OutputLength, int Repeat, PlanRole Role, int Batch = 1);

/// <summary>What a plan costs on the device, counted in prefills and decode steps.</summary>
/// <param name="Requests">Requests in the plan, repeats included (a group of <c>b</c> counts <c>b</c>).</param>
/// <param name="DecodeSteps">Decode steps the device runs over all points, repeats included (a group's rows step together).</param>
/// <param name="DecodeWidth">Sum of the decode buckets' widths times the batch buckets: one pass over every bucket.</param>
public readonly record struct PlanCost(int Requests, long DecodeSteps, long DecodeWidth)
{
    /// <summary>Decode steps of one repeat over one pass of every bucket's width.</summary>
    public double StepsPerWidth(int repeats) => DecodeWidth == 0 ? 0 : (double)DecodeSteps / repeats / DecodeWidth;
}

/// <summary>
/// The profiling plan of method.md ("Profiling: two E2E measurements per bucket"): for each decode bucket a pair of requests that
/// share the prompt length and differ only in output length, with every extra step of the longer one inside the bucket; for each
/// prefill bucket that no pair covers, its own measurement and a plateau check. Every request keeps <c>I + O &lt;= dj</c>.
/// </summary>
public sealed class ProfilingPlan
{
    internal ProfilingPlan(BucketSet buckets, PlanOptions options, IReadOnlyList<PlanRow> rows, PlanCost cost)
    {
        Buckets = buckets;
        Options = options;
        Rows = rows;
        Cost = cost;
    }

    public BucketSet Buckets { get; }

    public PlanOptions Options { get; }

    /// <summary>Rows in the order to run them: repeat rounds one after another, each round's points shuffled by the seed.</summary>
    public IReadOnlyList<PlanRow> Rows { get; }

    public PlanCost Cost { get; }

    /// <summary>The rows of one bucket, in run order: what re-profiling that bucket alone runs.</summary>
    public IEnumerable<PlanRow> RowsFor(BucketId bucket) => Rows.Where(r => r.Bucket == bucket);

    /// <summary>
    /// The bucket whose rows re-profile the cost cell <paramref name="cell"/> alone: the cell itself when it has rows of its own (a
    /// decode bucket with its batch bucket, or a prefill bucket no pair covers); for a prefill bucket a decode pair measures, the
    /// decode bucket of the smallest batch bucket whose intercept row (<c>O = 1</c>) has its prompt in that prefill bucket (the fit
    /// takes <c>A[p]</c> from that pair); null when no row measures the cell.
    /// </summary>
    public BucketId? ReprofileTarget(BucketId cell)
    {
        if (Rows.Any(r => r.Bucket == cell))
        {
            return cell;
        }

        if (cell.Kind != BucketKind.Prefill)
        {
            return null;
        }

        foreach (var r in Rows)
        {
            if (r is { Role: PlanRole.Intercept, Bucket.Kind: BucketKind.Decode } && r.Batch == Buckets.Batch[0] &&
                Buckets.PrefillIndex(r.InputLength) is var p && p >= 0 && Buckets.Prefill[p] == cell.Edge)
            {
                return r.Bucket;
            }
        }

        return null;
    }
}

/// <summary>Builds <see cref="ProfilingPlan"/>s. Pure and deterministic: the same bucket set and options always give the same list.</summary>
public static class ProfilingPlanner
{
    public static ProfilingPlan Create(BucketSet buckets, PlanOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        options ??= new PlanOptions();
        options.Validate();

        var rows = Interleave(PlanPoints(buckets, options.MaxSpan), options);
        long steps = rows.Sum(r => (long)r.OutputLength - 1);
        long width = (long)buckets.MaxSequence * buckets.Batch.Length;
        return new ProfilingPlan(buckets, options, rows, new PlanCost(rows.Sum(r => r.Batch), steps, width));
    }

    /// <summary>
    /// The distinct points of one repeat, bucket by bucket (decode buckets first, batch bucket by batch bucket, then uncovered
    /// prefill buckets). A batch bucket <c>b</c> gets the same pairs as single requests, each point a group of <c>b</c> identical
    /// requests released at once; prefill-only points run at the smallest batch bucket.
    /// </summary>
    public static IReadOnlyList<PlanRow> PlanPoints(BucketSet buckets, int? maxSpan = null)
    {
        var points = new List<PlanRow>();
        var covered = new bool[buckets.Prefill.Length];
        var smallest = buckets.Batch[0];
        foreach (var batch in buckets.Batch)
        {
            AddDecodePairs(buckets, batch, maxSpan, points, batch == smallest ? covered : null);
        }

        for (var i = 0; i < covered.Length; i++)
        {
            if (covered[i])
            {
                continue;
            }

            // A request needs I + O <= dn, so a prompt of the longest sequence itself is never served: stop one short.
            int lower = buckets.PrefillLowerEdge(i), top = Math.Min(buckets.Prefill[i], buckets.MaxSequence - 1);
            if (lower + 1 > top)
            {
                continue; // no servable request lands in this bucket
            }

            var id = new BucketId(BucketKind.Prefill, buckets.Prefill[i]);
            points.Add(new PlanRow(id, lower + 1, 1, 0, PlanRole.Prefill, smallest));
            if (top > lower + 1)
            {
                points.Add(new PlanRow(id, top, 1, 0, PlanRole.Prefill, smallest));
            }
        }

        return points;
    }

    private static void AddDecodePairs(BucketSet buckets, int batch, int? maxSpan, List<PlanRow> points, bool[]? covered)
    {
        var offset = (int)buckets.Convention;
        var pm = buckets.MaxPrompt;
        for (var j = 0; j < buckets.Decode.Length; j++)
        {
            int lower = buckets.DecodeLowerEdge(j), edge = buckets.Decode[j];
            var id = new BucketId(BucketKind.Decode, edge, batch);
            var (input, shortOut, longOut) = Pair(lower, edge, pm, offset, maxSpan);
            if (input < 1 || shortOut < 1 || longOut <= shortOut)
            {
                throw new PlanException(
                    $"decode bucket {edge} (lengths {lower + 1}..{edge}) is too narrow to time two requests that differ only in steps " +
                    "inside it while keeping I + O within the bucket; widen it or merge it with its neighbour");
            }

            var intercept = shortOut == 1;
            if (intercept && covered is not null)
            {
                covered[buckets.PrefillIndex(input)] = true;
            }

            points.Add(new PlanRow(id, input, shortOut, 0, intercept ? PlanRole.Intercept : PlanRole.Base, batch));
            points.Add(new PlanRow(id, input, longOut, 0, PlanRole.Slope, batch));
        }
    }

    /// <summary>The rows of <paramref name="points"/> over the repeats: each round visits every point in its own seeded order, so
    /// device drift spreads over all buckets.</summary>
    internal static List<PlanRow> Interleave(IReadOnlyList<PlanRow> points, PlanOptions options)
    {
        var rows = new List<PlanRow>(points.Count * options.Repeats);
        var rng = new Random(options.Seed);
        for (var repeat = 0; repeat < options.Repeats; repeat++)
        {
            var round = points.Select(p => p with { Repeat = repeat }).ToArray();
            rng.Shuffle(round);
            rows.AddRange(round);
        }

        return rows;
    }

    /// <summary>
    /// The two requests that time the lengths <c>lower + 1 .. edge</c> of one sequence: their prompt, short and long output. The
    /// paper's pair (prompt at the first length, <c>O = 1</c> and <c>O = edge - I</c>) when the first length is a prompt and the range
    /// is at least 3 wide; otherwise the short request's steps stop at <paramref name="lower"/> and the long one's run to the top, so
    /// their difference is steps of the range alone. Either output is below 1, or the long not above the short, when it cannot.
    /// </summary>
    internal static (int Input, int ShortOut, int LongOut) Pair(int lower, int edge, int maxPrompt, int offset, int? maxSpan)
    {
        int input, shortOut;
        if (lower + 1 <= maxPrompt && edge - lower >= 3)
        {
            input = lower + 1;
            shortOut = 1;
        }
        else
        {
            input = Math.Min(maxPrompt, lower - offset);
            shortOut = lower + 1 - input - offset;
        }

        var longOut = edge - input;
        if (maxSpan is { } span)
        {
            longOut = Math.Min(longOut, shortOut + span);
        }

        return (input, shortOut, longOut);
    }
}

/// <summary>A plan that cannot be built as asked (bad options, a bucket too narrow to time).</summary>
public sealed class PlanException(string message) : ArgumentException(message);
