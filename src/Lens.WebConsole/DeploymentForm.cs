using Lens.Abstractions;
using Lens.Core;
using Lens.Grains;

namespace Lens.WebConsole;

/// <summary>
/// The console's form for a reference-engine deployment (the built-in engine, method.md's bucketed transformer on the CPU). Bucket
/// lists are typed as text (<c>16,32,64</c>); <see cref="ToSpec"/> parses them and leaves every other rule to
/// <c>DeploymentSpec.Validate</c> (Lens.Grains), the same check the HTTP API runs, so the console and the API refuse the same specs.
/// The scheduling policy's fields are left at prefill-first padded unless the user picks another.
/// </summary>
public sealed class DeploymentForm
{
    public string Name { get; set; } = "llama";

    public string Model { get; set; } = "tiny-llama";

    public string PrefillBuckets { get; set; } = "16,32,64";

    public string DecodeBuckets { get; set; } = "16,32,64,128";

    public string EngineProfile { get; set; } = "tiny";

    public int Repeats { get; set; } = 1;

    public string Statistic { get; set; } = "min";

    public string SdkVersion { get; set; } = "";

    public string Dtype { get; set; } = "";

    public int TensorParallel { get; set; } = 1;

    /// <summary>The scheduling policy (<see cref="PolicySpec"/>): prefill-first or chunked, padded or paged, and its numbers (0: unset).</summary>
    public string Scheduler { get; set; } = PolicySpec.PrefillFirst;

    public string Execution { get; set; } = PolicySpec.Padded;

    public int MaxNumBatchedTokens { get; set; }

    public string TokenBuckets { get; set; } = "";

    public int MaxNumSeqs { get; set; }

    public int BlockSize { get; set; }

    public int MaxModelLen { get; set; }

    /// <summary>The spec, or null with every problem by field in <paramref name="errors"/>.</summary>
    public DeploymentSpec? ToSpec(out IReadOnlyDictionary<string, string[]> errors)
    {
        var found = new Dictionary<string, string[]>();
        var prefill = Edges(PrefillBuckets, "prefill", found, "prefillBuckets");
        var decode = Edges(DecodeBuckets, "decode", found, "decodeBuckets");
        var tokens = string.IsNullOrWhiteSpace(TokenBuckets) ? [] : Edges(TokenBuckets, "token", found, "policy.tokenBuckets");
        if (prefill is null || decode is null || tokens is null)
        {
            errors = found;
            return null;
        }

        var policy = new PolicySpec(Scheduler.Trim(), Execution.Trim(), MaxNumBatchedTokens, tokens, MaxNumSeqs, BlockSize, MaxModelLen);
        var spec = new DeploymentSpec(Name.Trim(), Model.Trim(), prefill, decode, new BackendSpec(BackendSpec.Reference, EngineProfile: EngineProfile.Trim()),
            TensorParallel: TensorParallel, SdkVersion: SdkVersion.Trim(), Dtype: Dtype.Trim(), Statistic: Statistic.Trim(), Repeats: Repeats,
            Policy: policy).Normalized();
        errors = spec.Validate();
        return errors.Count == 0 ? spec : null;
    }

    private static int[]? Edges(string text, string what, Dictionary<string, string[]> errors, string field)
    {
        try
        {
            return BucketSet.ParseEdges(text, what);
        }
        catch (BucketSetException ex)
        {
            errors[field] = [ex.Message];
            return null;
        }
    }
}
