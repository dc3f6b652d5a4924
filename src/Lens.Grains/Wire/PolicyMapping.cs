using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// A deployment's wire policy (<see cref="PolicySpec"/>) as Core's <see cref="SchedulingPolicy"/>, and its validation: every problem
/// names its JSON field (<c>policy.maxNumBatchedTokens</c>, ...) with the allowed range, from <see cref="SchedulingPolicy.Check"/>.
/// </summary>
public static class PolicyMapping
{
    /// <summary>Most token buckets a service deployment may have: they are its step table's rows, bounded as batch buckets are.</summary>
    public const int MaxTokenBuckets = DeploymentSpec.MaxBatchBuckets;

    /// <summary>
    /// Bound on the chunked planner's search (token buckets x context buckets x max_num_seqs x the widest context bucket), so that a
    /// hostile spec cannot make validation or profiling spin; real stacks' configurations sit far below it.
    /// </summary>
    public const long MaxChunkedPlanWork = 2_000_000_000;

    /// <summary>The JSON field each of <see cref="SchedulingPolicy.Check"/>'s reasons is about, by the first name it mentions.</summary>
    private static readonly (string Text, string Field)[] Fields =
    [
        ("chunked prefill with paged", "policy.execution"), ("scheduler", "policy.scheduler"), ("execution", "policy.execution"),
        ("maxModelLen", "policy.maxModelLen"), ("maxNumBatchedTokens", "policy.maxNumBatchedTokens"), ("maxNumSeqs", "policy.maxNumSeqs"),
        ("tokenBuckets", "policy.tokenBuckets"), ("token bucket", "policy.tokenBuckets"), ("blockSize", "policy.blockSize"),
    ];

    /// <summary>Core's policy of <paramref name="policy"/> (null: prefill-first padded). Throws <see cref="FormatException"/> on an
    /// unknown scheduler or execution; the numbers are checked by <see cref="SchedulingPolicy.Check"/>.</summary>
    public static SchedulingPolicy ToCore(PolicySpec? policy)
    {
        if (policy is null || policy.IsDefault)
        {
            return SchedulingPolicy.Default;
        }

        var scheduler = policy.Scheduler switch
        {
            PolicySpec.PrefillFirst or null or "" => SchedulerKind.PrefillFirst,
            PolicySpec.Chunked => SchedulerKind.Chunked,
            _ => throw new FormatException($"scheduler '{policy.Scheduler}' is not one of {string.Join(", ", PolicySpec.Schedulers)}"),
        };
        var execution = policy.Execution switch
        {
            PolicySpec.Padded or null or "" => ExecutionKind.Padded,
            PolicySpec.Paged => ExecutionKind.Paged,
            _ => throw new FormatException($"execution '{policy.Execution}' is not one of {string.Join(", ", PolicySpec.Executions)}"),
        };
        return new SchedulingPolicy
        {
            Scheduler = scheduler,
            Execution = execution,
            MaxNumBatchedTokens = policy.MaxNumBatchedTokens,
            TokenBuckets = [.. policy.TokenBuckets ?? []],
            MaxNumSeqs = policy.MaxNumSeqs,
            BlockSize = policy.BlockSize,
            MaxModelLen = policy.MaxModelLen,
        };
    }

    extension(BucketContext context)
    {
        /// <summary>The deployment's scheduling policy (prefill-first padded when the context has none).</summary>
        public SchedulingPolicy ToPolicy() => ToCore(context.Policy);
    }

    extension(DeploymentSpec spec)
    {
        /// <summary>The deployment's scheduling policy (prefill-first padded when the spec has none).</summary>
        public SchedulingPolicy ToPolicy() => ToCore(spec.Policy);

        /// <summary>Whether the spec names a policy other than prefill-first padded.</summary>
        public bool HasPolicy => spec.Policy is { IsDefault: false };
    }

    /// <summary>
    /// Checks <paramref name="spec"/>'s policy on its own and against the spec's batch buckets; adds each problem under its field and
    /// returns the policy when it is valid, else null.
    /// </summary>
    internal static SchedulingPolicy? Validate(DeploymentSpec spec, Action<string, string> add)
    {
        if (spec.Policy is not { IsDefault: false } wire)
        {
            return SchedulingPolicy.Default;
        }

        if (wire.TokenBuckets is { Length: > MaxTokenBuckets })
        {
            add("policy.tokenBuckets", $"tokenBuckets must list 1..{MaxTokenBuckets} step sizes; got {wire.TokenBuckets.Length}");
            return null;
        }

        SchedulingPolicy policy;
        try
        {
            policy = ToCore(wire);
        }
        catch (FormatException ex)
        {
            add(ex.Message.StartsWith("scheduler", StringComparison.Ordinal) ? "policy.scheduler" : "policy.execution", ex.Message);
            return null;
        }

        if (policy.Check() is { } problem)
        {
            add(FieldOf(problem), problem);
            return null;
        }

        if (policy.MaxNumSeqs > DeploymentSpec.MaxBatch)
        {
            add("policy.maxNumSeqs", $"maxNumSeqs {policy.MaxNumSeqs} is outside 1..{DeploymentSpec.MaxBatch}");
            return null;
        }

        // The chunked step table's rows are the token buckets: derived when batchBuckets is left out, refused when it disagrees.
        if (policy.Scheduler == SchedulerKind.Chunked && spec.BatchBuckets is { } batch && !batch.AsSpan().SequenceEqual(policy.TokenBuckets.AsSpan()))
        {
            add("batchBuckets", $"a chunked deployment's step rows are policy.tokenBuckets ({string.Join(',', policy.TokenBuckets)}); " +
                                $"leave batchBuckets out (or equal to them); got {string.Join(',', batch)}");
            return null;
        }

        if (policy.Scheduler == SchedulerKind.Chunked && spec.DecodeBuckets is { Length: > 0 } context)
        {
            var widest = 0L;
            for (var k = 0; k < context.Length; k++)
            {
                widest = Math.Max(widest, (long)context[k] - (k == 0 ? 0 : context[k - 1]));
            }

            if ((long)policy.TokenBuckets.Length * context.Length * policy.MaxNumSeqs * widest > MaxChunkedPlanWork)
            {
                add("policy.maxNumSeqs", $"{policy.TokenBuckets.Length} token buckets x {context.Length} context buckets x maxNumSeqs " +
                                         $"{policy.MaxNumSeqs} x the widest context bucket ({widest}) is above {MaxChunkedPlanWork:N0}: plan fewer or narrower buckets");
                return null;
            }
        }

        return policy;
    }

    /// <summary>The <c>policy.*</c> field a reason from <see cref="SchedulingPolicy.Check"/> or <see cref="PolicyScheduler.Problem"/> is about.</summary>
    internal static string FieldOf(string problem)
    {
        var (at, field) = (int.MaxValue, "policy");
        foreach (var (text, name) in Fields)
        {
            if (problem.IndexOf(text, StringComparison.Ordinal) is var i && i >= 0 && i < at)
            {
                (at, field) = (i, name);
            }
        }

        return field;
    }
}
