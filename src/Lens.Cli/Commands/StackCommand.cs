using System.ComponentModel;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class StackSettings : BucketSettings
{
    [CommandOption("--emit <STACK>")]
    [Description("Write these buckets in another stack's own format (nxdi, vllm-neuron, vllm-gaudi, rbln, furiosa) to --out.")]
    public string? Emit { get; init; }

    [CommandOption("--out <FILE>")]
    [Description("With --emit: where to write the stack's config (vllm-gaudi: the env lines, with the bucketing file beside it). Default: print it.")]
    public string? Out { get; init; }

    [CommandOption("--json")]
    [Description("Print the buckets and policy as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate()
    {
        if (Stack is null)
        {
            return ValidationResult.Error("--stack is required: nxdi, vllm-neuron, vllm-gaudi, rbln or furiosa");
        }

        if (Emit is not null && StackEmit.CheckTarget(Emit, Out) is { } problem)
        {
            return ValidationResult.Error(problem);
        }

        return Out is not null && Emit is null ? ValidationResult.Error("--out goes with --emit STACK") : base.Validate();
    }

    /// <summary>Every policy is shown: this command only reads the stack's configuration.</summary>
    protected override string? CheckPolicy(SchedulingPolicy policy) => null;
}

/// <summary><c>lens stack</c>: what a serving stack's own configuration means to LENS (its buckets and scheduling policy), and the same
/// buckets in another stack's format.</summary>
public sealed class StackCommand : Command<StackSettings>
{
    public override int Execute(CommandContext context, StackSettings settings, CancellationToken cancellationToken)
    {
        var buckets = settings.BuildBuckets();
        var policy = settings.BuildPolicy();
        var stack = ServingStacks.Normalize(settings.Stack!);
        if (settings.Emit is not null)
        {
            StackEmit.Write(settings.Emit, buckets, policy, StackKnobs.Empty, settings.Out, quiet: settings.Json);
        }

        var paged = policy.Execution == ExecutionKind.Paged;
        if (settings.Json)
        {
            CliJson.Write(new
            {
                stack,
                prefill = buckets.Prefill,
                decode = buckets.Decode,
                decodeUnit = paged ? "blocks" : "tokens",
                batch = buckets.Batch,
                policy = new
                {
                    name = policy.Name,
                    policy.Scheduler,
                    policy.Execution,
                    policy.MaxNumBatchedTokens,
                    tokenBuckets = policy.TokenBuckets,
                    policy.MaxNumSeqs,
                    policy.BlockSize,
                    policy.MaxModelLen,
                },
            });
            return LensApp.Ok;
        }

        if (settings.Emit is null || settings.Out is not null)
        {
            AnsiConsole.MarkupLineInterpolated($"[bold]{stack}[/]: policy {policy.Name}");
            AnsiConsole.MarkupLineInterpolated($"  prefill buckets (tokens): {string.Join(',', buckets.Prefill)}");
            AnsiConsole.MarkupLineInterpolated($"  decode buckets ({(paged ? $"KV blocks of {policy.BlockSize} tokens" : "tokens")}): {string.Join(',', buckets.Decode)}");
            AnsiConsole.MarkupLineInterpolated($"  batch buckets: {string.Join(',', buckets.Batch)}");
            if (policy.Scheduler == SchedulerKind.Chunked)
            {
                AnsiConsole.MarkupLineInterpolated(
                    $"  chunked: max_num_batched_tokens {policy.MaxNumBatchedTokens}, token buckets {string.Join(',', policy.TokenBuckets)}, max_num_seqs {policy.MaxNumSeqs}");
            }

            if (policy.MaxModelLen > 0)
            {
                AnsiConsole.MarkupLineInterpolated($"  max_model_len {policy.MaxModelLen}");
            }
        }

        return LensApp.Ok;
    }
}

/// <summary>Writes buckets in a stack's own format (<c>--emit</c> of <c>lens stack</c> and <c>lens advise</c>).</summary>
internal static class StackEmit
{
    /// <summary>Why <c>--emit</c> cannot write to <paramref name="output"/>, or null.</summary>
    public static string? CheckTarget(string emit, string? output)
    {
        try
        {
            var name = ServingStacks.Normalize(emit);
            return name == "vllm-gaudi" && output is null
                ? "--emit vllm-gaudi writes two files (env lines and the bucketing file they name): give the env file's path"
                : null;
        }
        catch (StackConfigException ex)
        {
            return $"--emit: {ex.Message}";
        }
    }

    /// <summary>Writes the stack's config to <paramref name="output"/> (and for vLLM on Gaudi its bucketing file beside it, named
    /// <c>STEM.buckets.txt</c>), or prints it when <paramref name="output"/> is null; notes on what the format cannot express go to
    /// stderr. Returns what was written.</summary>
    public static StackConfigText Write(string emit, BucketSet buckets, SchedulingPolicy policy, StackKnobs current, string? output, bool quiet)
    {
        var name = ServingStacks.Normalize(emit);
        var bucketFile = output is null ? "buckets.txt" : Path.GetFileNameWithoutExtension(output) + ".buckets.txt";
        var text = StackEmitter.Emit(name, buckets, policy, current, bucketFile);
        foreach (var note in text.Notes)
        {
            Console.Error.WriteLine($"note: --emit {name}: {note}");
        }

        if (output is null)
        {
            Console.Out.Write(text.Text);
            return text;
        }

        var written = new List<string> { output };
        CliFiles.WriteAtomically(output, w => w.Write(text.Text));
        if (text.BucketFileText is { } file)
        {
            var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, bucketFile);
            CliFiles.WriteAtomically(path, w => w.Write(file));
            written.Add(path);
        }

        if (!quiet)
        {
            AnsiConsole.MarkupLineInterpolated($"wrote {name} config [green]{string.Join(" and ", written)}[/]");
        }

        return text;
    }
}
