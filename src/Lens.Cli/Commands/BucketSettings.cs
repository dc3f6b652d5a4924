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

    [CommandOption("--batch-buckets <LIST>")]
    [Description("Compiled batch sizes, comma-separated and ascending, e.g. 1,2,4,8 (the largest is max_num_seqs; NxD " +
                 "token_generation_batches, RBLN decoder_batch_sizes). Default 1: one request at a time.")]
    public string? BatchBuckets { get; init; }

    [CommandOption("--batch-rule <NAME>")]
    [Description("Generate the batch buckets by a serving stack's rule up to --max-num-seqs: pow2 (vLLM on Neuron num_seqs_buckets), " +
                 "exp or lin (vLLM on Gaudi, with --batch-min and --batch-step).")]
    public string? BatchRule { get; init; }

    [CommandOption("--max-num-seqs <N>")]
    [Description("With --batch-rule: the most sequences in flight (the largest batch bucket).")]
    public int? MaxNumSeqs { get; init; }

    [CommandOption("--batch-min <N>")]
    [Description("With --batch-rule exp or lin: the smallest batch bucket.")]
    [DefaultValue(1)]
    public int BatchMin { get; init; } = 1;

    [CommandOption("--batch-step <N>")]
    [Description("With --batch-rule lin: the step between batch buckets (powers of two from --batch-min below it).")]
    [DefaultValue(32)]
    public int BatchStep { get; init; } = 32;

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
        catch (BucketSetException ex) when (ex.Message.StartsWith("--", StringComparison.Ordinal))
        {
            return ValidationResult.Error(ex.Message);
        }
        catch (BucketSetException ex)
        {
            var options = Preset is not null ? $"--preset {Preset}" : "--prefill-buckets/--decode-buckets";
            return ValidationResult.Error($"{options}: {ex.Message}");
        }
    }

    /// <summary>
    /// The batch buckets from <c>--batch-buckets</c> or <c>--batch-rule</c>; null (batch bucket [1], today's single requests) when
    /// neither is given. Throws <see cref="BucketSetException"/> naming the option and its allowed form.
    /// </summary>
    public int[]? BuildBatch()
    {
        if (BatchBuckets is not null && BatchRule is not null)
        {
            throw new BucketSetException("give either --batch-buckets (an explicit list such as 1,2,4,8) or --batch-rule with --max-num-seqs, not both");
        }

        if (BatchRule is null && (MaxNumSeqs is not null || BatchMin != 1 || BatchStep != 32))
        {
            throw new BucketSetException("--max-num-seqs, --batch-min and --batch-step go with --batch-rule pow2|exp|lin");
        }

        if (BatchBuckets is not null)
        {
            int[] edges;
            try
            {
                edges = BucketSet.ParseEdges(BatchBuckets, "batch");
            }
            catch (BucketSetException ex)
            {
                throw new BucketSetException($"--batch-buckets: {ex.Message} (expected ascending sizes in 1..{LensCsv.MaxBatch}, e.g. 1,2,4,8)");
            }

            for (var i = 0; i < edges.Length; i++)
            {
                if (edges[i] is < 1 or > LensCsv.MaxBatch || (i > 0 && edges[i] <= edges[i - 1]))
                {
                    throw new BucketSetException(
                        $"--batch-buckets: #{i + 1} is {edges[i]}; expected distinct ascending sizes in 1..{LensCsv.MaxBatch}, e.g. 1,2,4,8");
                }
            }

            return edges;
        }

        if (BatchRule is null)
        {
            return null;
        }

        if (MaxNumSeqs is null)
        {
            throw new BucketSetException($"--batch-rule {BatchRule} needs --max-num-seqs N (the largest batch bucket, 1..{LensCsv.MaxBatch})");
        }

        try
        {
            return BucketPresets.BatchBuckets(BatchRule, MaxNumSeqs.Value, BatchMin, BatchStep);
        }
        catch (BucketSetException ex)
        {
            throw new BucketSetException($"--batch-rule: {ex.Message}");
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
        var lengths = Preset is not null
            ? BucketPresets.Create(Preset, MaxContext ?? SeqLen!.Value, SeqLen!.Value, LinearMin, LinearStep, convention)
            : new BucketSet(BucketSet.ParseEdges(PrefillBuckets!, "prefill"), BucketSet.ParseEdges(DecodeBuckets!, "decode"), convention);
        return BuildBatch() is { } batch ? lengths.WithBatch(batch) : lengths;
    }
}
