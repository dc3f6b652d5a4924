using System.ComponentModel;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

/// <summary>
/// Bucket options with a deployment's scheduling policy (method.md, "Scheduling policies"): prefill-first padded by default (today's
/// options, unchanged); <c>--scheduler chunked</c> with a token budget, token buckets (the step table's rows) and --decode-buckets as
/// context buckets; <c>--execution paged</c> with a block size and block buckets (the decode columns, in KV blocks).
/// </summary>
public class PolicySettings : BucketSettings
{
    private SchedulingPolicy? _policy;
    private BucketSet? _buckets;

    [CommandOption("--scheduler <NAME>")]
    [Description("The serving stack's scheduler: prefill-first (default: prefill alone, then one decode step for everyone) or chunked " +
                 "(vLLM V1 chunked prefill: decodes and prompt chunks in one step under --max-num-batched-tokens).")]
    [DefaultValue("prefill-first")]
    public string Scheduler { get; init; } = "prefill-first";

    [CommandOption("--execution <NAME>")]
    [Description("How a decode step picks its bucket: padded (default: the longest sequence's decode bucket) or paged (vLLM on Gaudi: " +
                 "the batch's total KV blocks, bucketed by --block-buckets).")]
    [DefaultValue("padded")]
    public string Execution { get; init; } = "padded";

    [CommandOption("--max-num-batched-tokens <N>")]
    [Description("Chunked: the step's token budget (vLLM max_num_batched_tokens).")]
    public int? MaxNumBatchedTokens { get; init; }

    [CommandOption("--token-buckets <LIST>")]
    [Description("Chunked: compiled step sizes in tokens, ascending, the largest at least --max-num-batched-tokens, e.g. 8,32,128,256.")]
    public string? TokenBuckets { get; init; }

    [CommandOption("--block-size <N>")]
    [Description("Paged: tokens per KV block (vLLM block_size).")]
    public int? BlockSize { get; init; }

    [CommandOption("--block-buckets <LIST>")]
    [Description("Paged: decode buckets over the batch's total KV blocks, ascending; the largest is the KV capacity in blocks.")]
    public string? BlockBuckets { get; init; }

    [CommandOption("--max-model-len <N>")]
    [Description("Chunked or paged: the bound on I + O (vLLM max_model_len); default the largest decode (context) bucket, or the KV capacity.")]
    public int? MaxModelLen { get; init; }

    /// <summary>Whether the options (or the <c>--stack</c>'s configuration) name a policy other than prefill-first padded.</summary>
    public bool HasPolicy => ExplicitPolicy || (Stack is not null && !PolicyFromOptions().IsDefault);

    /// <summary>Whether <c>--scheduler</c> or <c>--execution</c> name a policy other than prefill-first padded.</summary>
    private bool ExplicitPolicy => Scheduler != "prefill-first" || Execution != "padded";

    /// <summary>The policy the options describe (checked by <see cref="Validate"/>), or the <c>--stack</c>'s.</summary>
    public SchedulingPolicy PolicyFromOptions() => _policy ??= ExplicitPolicy ? CreatePolicy() : BuildPolicy();

    /// <summary>The bucket set under the policy: today's (<see cref="BucketSettings.BuildBuckets"/>) for prefill-first padded, else the
    /// token buckets as rows and context buckets as columns (chunked) or block buckets as columns (paged); a <c>--stack</c>'s buckets
    /// under its own policy.</summary>
    public BucketSet BuildDeploymentBuckets() => _buckets ??= ExplicitPolicy ? CreatePolicyBuckets() : StackOrPlainBuckets();

    /// <summary>Plan and fit run every policy, so a stack's chunked or paged configuration is taken as it is.</summary>
    protected override string? CheckPolicy(SchedulingPolicy policy) => null;

    private BucketSet StackOrPlainBuckets()
    {
        var buckets = BuildBuckets();
        var policy = PolicyFromOptions();
        // The chunked step table's rows are token buckets (SchedulingPolicy): the stack's bucket set carries them as its batch axis.
        return policy.Scheduler == SchedulerKind.Chunked ? buckets.WithBatch(policy.TokenBuckets) : buckets;
    }

    public override ValidationResult Validate()
    {
        if (Scheduler is not ("prefill-first" or "chunked"))
        {
            return ValidationResult.Error($"--scheduler must be prefill-first or chunked; got '{Scheduler}'");
        }

        if (Execution is not ("padded" or "paged"))
        {
            return ValidationResult.Error($"--execution must be padded or paged; got '{Execution}'");
        }

        if (ExplicitPolicy && Stack is not null)
        {
            return ValidationResult.Error("give either --stack (its own scheduler) or --scheduler/--execution, not both");
        }

        if (!ExplicitPolicy)
        {
            return MaxNumBatchedTokens is not null || TokenBuckets is not null || BlockSize is not null || BlockBuckets is not null || MaxModelLen is not null
                ? ValidationResult.Error("--max-num-batched-tokens, --token-buckets, --block-size, --block-buckets and --max-model-len go with " +
                                         "--scheduler chunked or --execution paged")
                : base.Validate();
        }

        try
        {
            var policy = PolicyFromOptions();
            var buckets = BuildDeploymentBuckets();
            return PolicyScheduler.Problem(buckets, policy) is { } problem
                ? ValidationResult.Error($"--scheduler {Scheduler} --execution {Execution}: {problem}")
                : ValidationResult.Success();
        }
        catch (BucketSetException ex)
        {
            return ValidationResult.Error(ex.Message);
        }
    }

    private BucketSet CreatePolicyBuckets()
    {
        if (Preset is not null)
        {
            throw new BucketSetException("--preset generates prefill-first padded buckets; give the lists with --scheduler chunked or --execution paged");
        }

        var convention = Convention switch
        {
            "after-append" => DecodeConvention.AfterAppend,
            "before-append" => DecodeConvention.BeforeAppend,
            _ => throw new BucketSetException($"--convention must be after-append or before-append; got '{Convention}'"),
        };
        var policy = PolicyFromOptions();
        if (policy.Scheduler == SchedulerKind.Chunked)
        {
            if (BatchBuckets is not null || BatchRule is not null)
            {
                throw new BucketSetException("--scheduler chunked: the step table's rows are --token-buckets; --batch-buckets and --batch-rule do not apply");
            }

            var context = Edges(DecodeBuckets, "--decode-buckets", "context buckets, e.g. 128,256,512,1024");
            var prefill = PrefillBuckets is null ? [context[^1]] : Edges(PrefillBuckets, "--prefill-buckets", "e.g. 128,256,512");
            return Guard("--decode-buckets", () => new BucketSet(prefill, context, convention, policy.TokenBuckets));
        }

        if (DecodeBuckets is not null)
        {
            throw new BucketSetException("--execution paged buckets decode steps by --block-buckets (KV blocks); --decode-buckets does not apply");
        }

        var prompts = Edges(PrefillBuckets, "--prefill-buckets", "e.g. 128,256,512");
        var blocks = Edges(BlockBuckets, "--block-buckets", "total KV blocks of a batch, e.g. 16,32,64,128");
        return Guard("--block-buckets", () => BucketSet.Paged(prompts, blocks, convention, BuildBatch()));
    }

    private SchedulingPolicy CreatePolicy()
    {
        var maxModelLen = MaxModelLen ?? 0;
        if (maxModelLen is < 0 or > SchedulingPolicy.MaxTokens)
        {
            throw new BucketSetException($"--max-model-len must be in 1..{SchedulingPolicy.MaxTokens}; got {maxModelLen}");
        }

        SchedulingPolicy policy;
        if (Scheduler == "chunked")
        {
            if (Execution == "paged")
            {
                throw new BucketSetException("--scheduler chunked with --execution paged is not modelled; use --execution padded with chunked");
            }

            if (MaxNumBatchedTokens is not ({ } budget and >= 1 and <= SchedulingPolicy.MaxTokens))
            {
                throw new BucketSetException($"--scheduler chunked needs --max-num-batched-tokens in 1..{SchedulingPolicy.MaxTokens}; got {MaxNumBatchedTokens?.ToString() ?? "none"}");
            }

            if (MaxNumSeqs is not ({ } seqs and >= 1 and <= LensCsv.MaxBatch))
            {
                throw new BucketSetException($"--scheduler chunked needs --max-num-seqs in 1..{LensCsv.MaxBatch}; got {MaxNumSeqs?.ToString() ?? "none"}");
            }

            var tokens = Edges(TokenBuckets, "--token-buckets", $"step sizes in 1..{SchedulingPolicy.MaxTokens}, e.g. 8,32,128,256");
            policy = SchedulingPolicy.ChunkedPrefill(budget, tokens, seqs, maxModelLen);
        }
        else
        {
            if (MaxNumBatchedTokens is not null || TokenBuckets is not null)
            {
                throw new BucketSetException("--max-num-batched-tokens and --token-buckets go with --scheduler chunked");
            }

            if (BlockSize is not ({ } size and >= 1 and <= SchedulingPolicy.MaxTokens))
            {
                throw new BucketSetException($"--execution paged needs --block-size in 1..{SchedulingPolicy.MaxTokens}; got {BlockSize?.ToString() ?? "none"}");
            }

            policy = SchedulingPolicy.PagedDecode(size, maxModelLen);
        }

        if (Scheduler == "chunked" && (BlockSize is not null || BlockBuckets is not null))
        {
            throw new BucketSetException("--block-size and --block-buckets go with --execution paged");
        }

        return policy.Check() is { } problem ? throw new BucketSetException($"--scheduler {Scheduler} --execution {Execution}: {problem}") : policy;
    }

    private static int[] Edges(string? text, string option, string example)
    {
        if (text is null)
        {
            throw new BucketSetException($"{option} is required here ({example})");
        }

        try
        {
            return BucketSet.ParseEdges(text, option.TrimStart('-'));
        }
        catch (BucketSetException ex)
        {
            throw new BucketSetException($"{option}: {ex.Message} ({example})");
        }
    }

    private static BucketSet Guard(string option, Func<BucketSet> create)
    {
        try
        {
            return create();
        }
        catch (BucketSetException ex) when (!ex.Message.StartsWith("--", StringComparison.Ordinal))
        {
            throw new BucketSetException($"{option}: {ex.Message}");
        }
    }
}
