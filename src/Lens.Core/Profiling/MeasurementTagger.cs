namespace Lens.Core;

/// <summary>
/// Assigns measurements to the bucket whose profile they belong to. A measurement that names its bucket keeps it; one that does
/// not (a CSV made elsewhere) is placed by its lengths, using the rules the plan follows:
/// <list type="bullet">
/// <item>O &gt; 1: the decode bucket of its last step; if that step sits exactly on a bucket's top edge and another request of the
/// same prompt ends inside the next bucket, the pair profiles the next bucket (the short request of a beyond-the-prompt pair).</item>
/// <item>O = 1: the decode bucket of a request with the same prompt whose steps all fall in one bucket (the pair's intercept);
/// otherwise the prefill bucket <c>pre(I)</c>.</item>
/// </list>
/// </summary>
public static class MeasurementTagger
{
    public static Dictionary<BucketId, List<MeasuredRequest>> Tag(BucketSet buckets, IEnumerable<MeasuredRequest> measurements)
    {
        var all = measurements.ToArray();
        var assigned = Assign(buckets, all);
        var result = new Dictionary<BucketId, List<MeasuredRequest>>();
        for (var i = 0; i < all.Length; i++)
        {
            if (!result.TryGetValue(assigned[i], out var list))
            {
                result[assigned[i]] = list = [];
            }

            list.Add(all[i]);
        }

        return result;
    }

    /// <summary>The bucket of each measurement, in order (a named bucket is kept; see the type's summary for the rest).</summary>
    public static BucketId[] Assign(BucketSet buckets, IReadOnlyList<MeasuredRequest> measurements)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(measurements);

        // One pass gathers, per prompt length, what the other requests of that prompt say; each row is then placed in O(log buckets).
        var byInput = new Dictionary<(int, int), SamePrompt>();
        foreach (var m in measurements)
        {
            if (m.Bucket is null && m.OutputLength > 1)
            {
                if (!byInput.TryGetValue((m.InputLength, m.Batch), out var same))
                {
                    byInput[(m.InputLength, m.Batch)] = same = new SamePrompt();
                }

                same.Add(buckets, m.InputLength, m.OutputLength);
            }
        }

        var none = new SamePrompt();
        var assigned = new BucketId[measurements.Count];
        for (var i = 0; i < measurements.Count; i++)
        {
            var m = measurements[i];
            if (buckets.CheckRequest(m.InputLength, m.OutputLength) is { } reason)
            {
                throw new ArgumentException($"measurement #{i + 1} (I={m.InputLength}, O={m.OutputLength}): {reason}");
            }

            if (buckets.BatchIndex(m.Batch) is var b && (b < 0 || buckets.Batch[b] != m.Batch))
            {
                throw new ArgumentException(
                    $"measurement #{i + 1} (I={m.InputLength}, O={m.OutputLength}) ran in a group of {m.Batch}, which is not a batch bucket of {buckets}");
            }

            assigned[i] = m.Bucket ?? Infer(buckets, m, byInput.GetValueOrDefault((m.InputLength, m.Batch)) ?? none);
            if (!buckets.Contains(assigned[i]))
            {
                throw new ArgumentException($"measurement #{i + 1} names bucket {assigned[i]}, which is not in {buckets}");
            }
        }

        return assigned;
    }

    /// <summary>The bucket a measurement without a tag belongs to (see the type's summary).</summary>
    /// <param name="longerOutputsOfSamePrompt">Output lengths (above 1) of the untagged requests with the same prompt length.</param>
    public static BucketId Infer(BucketSet buckets, MeasuredRequest m, IReadOnlyCollection<int> longerOutputsOfSamePrompt)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(longerOutputsOfSamePrompt);
        var same = new SamePrompt();
        foreach (var o in longerOutputsOfSamePrompt)
        {
            same.Add(buckets, m.InputLength, o);
        }

        return Infer(buckets, m, same);
    }

    private static BucketId Infer(BucketSet buckets, MeasuredRequest m, SamePrompt same)
    {
        var decode = buckets.Decode;
        if (m.OutputLength == 1)
        {
            return same.PairBucket >= 0
                ? new BucketId(BucketKind.Decode, decode[same.PairBucket], m.Batch)
                : new BucketId(BucketKind.Prefill, buckets.Prefill[buckets.PrefillIndex(m.InputLength)]);
        }

        var frontier = buckets.StepLength(m.InputLength, m.OutputLength - 1);
        var j = Math.Max(0, buckets.DecodeIndex(frontier));
        if (frontier == decode[j] && j + 1 < decode.Length && same.LastStepBuckets.Contains(j + 1))
        {
            j++;
        }

        return new BucketId(BucketKind.Decode, decode[j], m.Batch);
    }

    /// <summary>What the longer requests (O &gt; 1) of one prompt length say about where its other requests belong.</summary>
    private sealed class SamePrompt
    {
        /// <summary>A decode bucket (index) holding every step of one of them, whose pair an O = 1 request of the prompt joins; or -1.</summary>
        public int PairBucket { get; private set; } = -1;

        /// <summary>The decode buckets (indexes) their last steps fall in.</summary>
        public HashSet<int> LastStepBuckets { get; } = [];

        public void Add(BucketSet buckets, int inputLength, int outputLength)
        {
            var first = buckets.DecodeIndex(buckets.StepLength(inputLength, 1));
            var last = buckets.DecodeIndex(buckets.StepLength(inputLength, outputLength - 1));
            LastStepBuckets.Add(last);
            if (PairBucket < 0 && first >= 0 && first == last)
            {
                PairBucket = first;
            }
        }
    }
}
