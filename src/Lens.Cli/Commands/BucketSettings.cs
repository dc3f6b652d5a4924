using System.ComponentModel;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

/// <summary>Bucket sets, given as explicit lists or as a serving stack's preset.</summary>
public class BucketSettings : CommandSettings
{
    private BucketSet? _buckets;

    [CommandOption("--prefill-buckets <LIST>")]
    [Description("Prefill (context-encoding) bucket lengths, comma-separated and ascending, e.g. 128,256,512.")]
    public string? PrefillBuckets { get; init; }

    [CommandOption("--decode-buckets <LIST>")]
    [Description("Decode (token-generation) bucket lengths, comma-separated and ascending, e.g. 128,256,512,1024.")]
    public string? DecodeBuckets { get; init; }

    [CommandOption("--preset <NAME>")]
    [Description("Generate the buckets by a serving stack's rule instead: nxdi (powers of two from 128, then the max), neuronx, linear.")]
    public string? Preset { get; init; }

    [CommandOption("--max-context <N>")]
    [Description("With --preset: the longest prompt (NxD max_context_length).")]
    public int? MaxContext { get; init; }

    [CommandOption("--seq-len <N>")]
    [Description("With --preset: the longest sequence (NxD seq_len, neuronx n_positions).")]
    public int? SeqLen { get; init; }

    [CommandOption("--linear-min <N>")]
    [Description("With --preset linear: the first bucket.")]
    [DefaultValue(128)]
    public int LinearMin { get; init; } = 128;

    [CommandOption("--linear-step <N>")]
    [Description("With --preset linear: the step between buckets.")]
    [DefaultValue(128)]
    public int LinearStep { get; init; } = 128;

    [CommandOption("--convention <NAME>")]
    [Description("Which length picks a decode step's bucket: after-append (I + k, default) or before-append (I + k - 1).")]
    [DefaultValue("after-append")]
    public string Convention { get; init; } = "after-append";

    /// <summary>Whether bucket options were given at all (commands where they are optional check this first).</summary>
    public bool HasBuckets => Preset is not null || PrefillBuckets is not null || DecodeBuckets is not null;

    public override ValidationResult Validate()
    {
        var explicitLists = PrefillBuckets is not null || DecodeBuckets is not null;
        if (Preset is not null && explicitLists)
        {
            return ValidationResult.Error("give either --preset or --prefill-buckets/--decode-buckets, not both");
        }

        if (Preset is null && (PrefillBuckets is null || DecodeBuckets is null))
        {
            return ValidationResult.Error("give both --prefill-buckets and --decode-buckets (or --preset with --max-context and --seq-len)");
        }

        if (Preset is not null && Preset != "neuronx" && (MaxContext is null || SeqLen is null))
        {
            return ValidationResult.Error($"--preset {Preset} needs --max-context and --seq-len");
        }

        if (Preset == "neuronx" && SeqLen is null)
        {
            return ValidationResult.Error("--preset neuronx needs --seq-len (n_positions)");
        }

        if (Convention is not ("after-append" or "before-append"))
        {
            return ValidationResult.Error($"--convention must be after-append or before-append; got '{Convention}'");
        }

        // Bad lists are usage errors (exit 2), found before the command runs.
        try
        {
            _buckets = CreateBuckets();
            return ValidationResult.Success();
        }
        catch (BucketSetException ex)
        {
            var options = Preset is not null ? $"--preset {Preset}" : "--prefill-buckets/--decode-buckets";
            return ValidationResult.Error($"{options}: {ex.Message}");
        }
    }

    /// <summary>Why <c>--repeats</c> or <c>--max-span</c> cannot plan (the planner's own limits), or null: a usage error, found early.</summary>
    protected static string? CheckPlanOptions(int repeats, int? maxSpan) =>
        repeats is < 1 or > PlanOptions.MaxRepeats ? $"--repeats must be in 1..{PlanOptions.MaxRepeats}; got {repeats}"
        : maxSpan is < 1 ? $"--max-span must be at least 1 decode step; got {maxSpan}"
        : null;

    /// <summary>The bucket set the options describe (checked by <see cref="Validate"/>).</summary>
    public BucketSet BuildBuckets() => _buckets ??= CreateBuckets();

    private BucketSet CreateBuckets()
    {
        var convention = Convention == "before-append" ? DecodeConvention.BeforeAppend : DecodeConvention.AfterAppend;
        return Preset is not null
            ? BucketPresets.Create(Preset, MaxContext ?? SeqLen!.Value, SeqLen!.Value, LinearMin, LinearStep, convention)
            : new BucketSet(BucketSet.ParseEdges(PrefillBuckets!, "prefill"), BucketSet.ParseEdges(DecodeBuckets!, "decode"), convention);
    }
}
