namespace Lens.Core;

/// <summary>
/// What a serving stack's own configuration means to LENS: its bucket set and scheduling policy (method.md, "Bucket sets of real
/// serving stacks", "Batched serving", "Scheduling policies"), and notes on what the stack does that the bucket grid cannot say.
/// </summary>
public sealed record StackDeployment(string Stack, BucketSet Buckets, SchedulingPolicy Policy, IReadOnlyList<string> Notes);

/// <summary>
/// Serving stacks by their own knobs: each name maps the stack's configuration names and defaults to a <see cref="StackDeployment"/>,
/// a pure function of the knobs (the file <c>VLLM_BUCKETING_FROM_FILE</c> names is read through the caller's delegate).
/// </summary>
public static class ServingStacks
{
    /// <summary>The stacks known, as <c>--stack</c> takes them.</summary>
    public static readonly IReadOnlyList<string> Names = ["nxdi", "vllm-neuron", "vllm-gaudi", "rbln", "furiosa"];

    /// <summary>Whether the stack's own config file is environment lines (<c>KEY=VALUE</c>, vLLM on Gaudi) rather than JSON.</summary>
    public static bool TakesEnvLines(string stack) => Normalize(stack) == "vllm-gaudi";

    /// <summary>The stack name as <see cref="Names"/> spells it; throws naming the known stacks otherwise.</summary>
    public static string Normalize(string stack)
    {
        ArgumentNullException.ThrowIfNull(stack);
        var name = stack.Trim().ToLowerInvariant();
        return Names.Contains(name)
            ? name
            : throw new StackConfigException($"unknown stack '{stack}'; known stacks: {string.Join(", ", Names)}");
    }

    /// <summary>The bucket set and policy the stack's knobs give.</summary>
    public static StackDeployment Resolve(string stack, StackKnobs knobs, DecodeConvention convention = DecodeConvention.AfterAppend,
        Func<string, string>? readFile = null)
    {
        ArgumentNullException.ThrowIfNull(knobs);
        try
        {
            return Normalize(stack) switch
            {
                "nxdi" => NeuronStacks.Nxdi(knobs, convention),
                "vllm-neuron" => NeuronStacks.VllmNeuron(knobs, convention),
                "vllm-gaudi" => VllmGaudiStack.Resolve(knobs, convention, readFile),
                "rbln" => RblnFuriosaStacks.Rbln(knobs, convention),
                _ => RblnFuriosaStacks.Furiosa(knobs, convention),
            };
        }
        catch (BucketSetException ex)
        {
            throw new StackConfigException($"{knobs.Source}: {ex.Message}");
        }
    }
}
