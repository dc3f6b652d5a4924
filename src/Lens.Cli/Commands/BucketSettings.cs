using System.ComponentModel;
using Lens.Core;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

/// <summary>Bucket sets, given as explicit lists or as a serving stack's preset.</summary>
public class BucketSettings : CommandSettings
{
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

        return Convention is "after-append" or "before-append"
            ? ValidationResult.Success()
            : ValidationResult.Error($"--convention must be after-append or before-append; got '{Convention}'");
    }

    public BucketSet BuildBuckets()
    {
        var convention = Convention == "before-append" ? DecodeConvention.BeforeAppend : DecodeConvention.AfterAppend;
        return Preset is not null
            ? BucketPresets.Create(Preset, MaxContext ?? SeqLen!.Value, SeqLen!.Value, LinearMin, LinearStep, convention)
            : new BucketSet(BucketSet.ParseEdges(PrefillBuckets!, "prefill"), BucketSet.ParseEdges(DecodeBuckets!, "decode"), convention);
    }
}
