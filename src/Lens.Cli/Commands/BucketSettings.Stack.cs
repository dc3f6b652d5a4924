using System.ComponentModel;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

/// <summary>
/// <c>--stack NAME</c>: the buckets and scheduling policy from a serving stack's own configuration (ServingStacks in Core): its
/// config file (<c>--stack-config</c>), the process's <c>VLLM_*</c> variables (<c>--stack-from-environment</c>) and
/// <c>--stack-set KEY=VALUE</c>, later over earlier. Explicit <c>--prefill-buckets</c>, <c>--decode-buckets</c>,
/// <c>--batch-buckets</c> or <c>--batch-rule</c> still override the stack's.
/// </summary>
public partial class BucketSettings
{
    private StackDeployment? _stack;

    [CommandOption("--stack <NAME>")]
    [Description("Take buckets and scheduling policy from a serving stack's own configuration: nxdi, vllm-neuron, vllm-gaudi, rbln, " +
                 "furiosa (docs/cli.md, \"Stacks\"). Explicit bucket options still override.")]
    public string? Stack { get; init; }

    [CommandOption("--stack-config <FILE>")]
    [Description("With --stack: the stack's own config file: a neuron config JSON (nxdi), vLLM's arguments JSON (vllm-neuron), " +
                 "KEY=VALUE environment lines (vllm-gaudi), rbln_config.json (rbln), BucketConfig JSON (furiosa).")]
    public string? StackConfig { get; init; }

    [CommandOption("--stack-set <KEY=VALUE>")]
    [Description("With --stack: one of the stack's own knobs by its own name, over the config file, e.g. max_num_seqs=8 (repeatable).")]
    public string[]? StackSet { get; init; }

    [CommandOption("--stack-from-environment")]
    [Description("With --stack vllm-gaudi: read the process's VLLM_* environment variables (over --stack-config, under --stack-set).")]
    public bool StackFromEnvironment { get; init; }

    /// <summary>The stack's scheduling policy (<see cref="SchedulingPolicy.Default"/> without <c>--stack</c>).</summary>
    public SchedulingPolicy BuildPolicy()
    {
        _ = BuildBuckets();
        return _stack?.Policy ?? SchedulingPolicy.Default;
    }

    /// <summary>
    /// Why this command cannot run the stack's policy, or null. Today's plan, profile, fit and whatif run prefill-first padded only:
    /// a stack with chunked prefill or paged decode is refused rather than planned as something else. A command that runs every
    /// policy overrides this.
    /// </summary>
    protected virtual string? CheckPolicy(SchedulingPolicy policy) =>
        policy.IsDefault
            ? null
            : $"--stack {Stack}: the stack runs the {policy.Name} policy, and this command plans and fits prefill-first padded deployments " +
              "only; 'lens stack' shows its buckets and policy";

    private ValidationResult ValidateStack()
    {
        if (Preset is not null)
        {
            return ValidationResult.Error("give either --stack or --preset, not both");
        }

        if (Convention is not ("after-append" or "before-append"))
        {
            return ValidationResult.Error($"--convention must be after-append or before-append; got '{Convention}'");
        }

        try
        {
            _ = ServingStacks.Normalize(Stack!);
        }
        catch (StackConfigException ex)
        {
            return ValidationResult.Error($"--stack: {ex.Message}");
        }

        // The stack's files are read when the command runs: a bad value there fails it (exit 1) naming the file, line and key.
        return ValidationResult.Success();
    }

    private BucketSet CreateStackBuckets(DecodeConvention convention)
    {
        var name = ServingStacks.Normalize(Stack!);
        var knobs = StackFiles.Read(name, StackConfig, StackFromEnvironment, StackSet);
        var deployment = StackFiles.Resolve(name, knobs, StackConfig, convention);
        if (CheckPolicy(deployment.Policy) is { } problem)
        {
            throw new CliException(problem);
        }

        try
        {
            var prefill = PrefillBuckets is null ? [.. deployment.Buckets.Prefill] : BucketSet.ParseEdges(PrefillBuckets, "prefill");
            var decode = DecodeBuckets is null ? [.. deployment.Buckets.Decode] : BucketSet.ParseEdges(DecodeBuckets, "decode");
            var lengths = deployment.Policy.Execution == ExecutionKind.Paged
                ? BucketSet.Paged(prefill, decode, convention)
                : new BucketSet(prefill, decode, convention);
            _stack = deployment with { Buckets = lengths.WithBatch(BuildBatch() ?? [.. deployment.Buckets.Batch]) };
        }
        catch (BucketSetException ex)
        {
            throw new CliException($"--stack {name} with explicit buckets: {ex.Message}");
        }

        foreach (var note in deployment.Notes)
        {
            Console.Error.WriteLine($"note: --stack {name}: {note}");
        }

        return _stack.Buckets;
    }
}
