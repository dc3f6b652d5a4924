using System.Text.Json;
using System.Text.Json.Serialization;

namespace Lens.Core;

/// <summary>
/// The versioned model file (<c>lens fit --out model.json</c>): format name and version, bucket sets, decode convention, the
/// statistic of the profile (the point prediction is that statistic), the interval calibration, and each bucket's fitted values
/// with standard errors. Unknown members are ignored, so later versions
/// can add fields; a different <see cref="ModelDocument.Format"/> or a newer major <see cref="ModelDocument.Version"/> is refused.
/// A what-if model carries a <c>predicted</c> block (<see cref="PredictedBlock"/>), which older readers ignore.
/// Version 2 adds batch buckets (<c>batchBuckets</c>, and <c>batch</c> on each decode value); a model without batch buckets is still
/// written as version 1, which earlier releases read, and version 1 files load as batch bucket <c>[1]</c>.
/// Version 3 adds the scheduling policy (<c>policy</c>); only a model with a policy other than prefill-first padded is written as
/// version 3, so a release that would read its cost table under the wrong scheduler refuses it instead.
/// </summary>
public static class ModelJson
{
    public const string Format = "lens-model";
    public const int Version = 3;

    /// <summary>The version a batched model under the default policy is written as.</summary>
    public const int BatchedVersion = 2;

    /// <summary>The version a model without batch buckets is written as (readable by every release).</summary>
    public const int SingleBatchVersion = 1;

    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    /// <param name="predicted">Marks a what-if model (<see cref="WhatIfModels"/>): written as the <c>predicted</c> block.</param>
    public static string Serialize(DeploymentModel model, PredictedBlock? predicted = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var doc = new ModelDocument
        {
            Format = Format,
            Version = !model.Policy.IsDefault ? Version : model.Buckets.IsBatched ? BatchedVersion : SingleBatchVersion,
            PrefillBuckets = [.. model.Buckets.Prefill],
            DecodeBuckets = [.. model.Buckets.Decode],
            BatchBuckets = model.Buckets.IsBatched ? [.. model.Buckets.Batch] : null,
            Convention = model.Buckets.Convention,
            Statistic = model.Statistic.ToString(),
            RelativeNoise = model.RelativeNoise,
            Calibration = model.Calibration,
            Prefill = [.. model.PrefillBuckets],
            Decode = [.. model.DecodeBuckets.Select(d => new DecodeDocument(d.Edge, d.StepMs, d.StepStandardError, model.Buckets.IsBatched ? d.Batch : null))],
            Predicted = predicted,
            Chips = model.Layout.IsDefault ? null : model.Layout.Chips,
            DeviceKind = model.Layout.DeviceKind,
            PricePerChipHour = model.Layout.PricePerChipHour,
            Policy = model.Policy.IsDefault ? null : model.Policy,
            Provenance = model.Provenance.Count == 0 ? null : model.Provenance.OrderBy(p => p.Key.ToString(), StringComparer.Ordinal)
                .ToDictionary(p => p.Key.ToString(), p => new ProvenanceDocument(ModelProvenance.Traffic, p.Value.CostMs, p.Value.ProfiledMs,
                    p.Value.Steps, p.Value.WindowStartMs, p.Value.WindowEndMs, p.Value.EstimatedAt), StringComparer.Ordinal),
        };
        return JsonSerializer.Serialize(doc, Options);
    }

    /// <summary>The <c>predicted</c> block of a model file (null for a profiled model or unreadable JSON).</summary>
    public static PredictedBlock? ReadPredicted(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<ModelDocument>(json, Options)?.Predicted;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Reads a model; <paramref name="source"/> names the file in errors.</summary>
    public static DeploymentModel Deserialize(string json, string source)
    {
        ModelDocument? doc;
        try
        {
            doc = JsonSerializer.Deserialize<ModelDocument>(json, Options);
        }
        catch (JsonException ex)
        {
            throw new FormatException($"{source}: not a LENS model file: {ex.Message}", ex);
        }

        if (doc is null || doc.Format != Format)
        {
            throw new FormatException($"{source}: not a LENS model file (format is '{doc?.Format}', expected '{Format}')");
        }

        if (doc.Version is < 1 or > Version)
        {
            throw new FormatException($"{source}: model format version {doc.Version} is not supported (this LENS reads 1..{Version})");
        }

        try
        {
            var buckets = doc.Policy?.Execution == ExecutionKind.Paged
                ? BucketSet.Paged(doc.PrefillBuckets ?? [], doc.DecodeBuckets ?? [], doc.Convention, doc.BatchBuckets) // decode axis in blocks
                : new BucketSet(doc.PrefillBuckets ?? [], doc.DecodeBuckets ?? [], doc.Convention, doc.BatchBuckets);
            var decode = (doc.Decode ?? []).Select(d => new DecodeValues(d.Edge, d.StepMs, d.StepStandardError, d.Batch ?? 1)).ToArray();
            var model = new DeploymentModel(buckets, doc.Prefill ?? [], decode, RepeatStatistic.Parse(doc.Statistic ?? "min"),
                doc.RelativeNoise, doc.Calibration);
            var layout = new DeploymentLayout(doc.Chips ?? 1, doc.DeviceKind, doc.PricePerChipHour);
            model = layout.IsDefault ? model : model.WithLayout(layout);
            model = doc.Policy is null ? model : model.WithPolicy(doc.Policy);
            return doc.Provenance is null ? model : model.WithProvenance(ReadProvenance(doc.Provenance));
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException)
        {
            throw new FormatException($"{source}: invalid model: {ex.Message}", ex);
        }
    }

    /// <summary>The <c>provenance</c> block: every entry a cell of the model estimated from traffic (source <c>traffic</c>).</summary>
    private static Dictionary<BucketId, TrafficEstimate> ReadProvenance(Dictionary<string, ProvenanceDocument> block)
    {
        if (block.Count > MaxProvenanceCells)
        {
            throw new FormatException($"provenance: {block.Count} cells; at most {MaxProvenanceCells}");
        }

        var provenance = new Dictionary<BucketId, TrafficEstimate>();
        foreach (var (key, p) in block)
        {
            if (!BucketId.TryParse(key, out var cell) || p is null)
            {
                throw new FormatException($"provenance.{key}: not a cell (prefill-N, decode-N or decode-N-bB) with an entry");
            }

            if (p.Source != ModelProvenance.Traffic)
            {
                throw new FormatException($"provenance.{key}.source is '{p.Source}'; only '{ModelProvenance.Traffic}' is recorded (profiled is the default)");
            }

            provenance[cell] = new TrafficEstimate(cell, p.CostMs, p.ProfiledMs, p.Steps, p.WindowStartMs, p.WindowEndMs, p.EstimatedAt);
        }

        return provenance;
    }

    /// <summary>Most cells a provenance block may name.</summary>
    public const int MaxProvenanceCells = 65_536;

    /// <summary>The JSON shape of a model file.</summary>
    public sealed class ModelDocument
    {
        public string? Format { get; set; }

        public int Version { get; set; }

        public int[]? PrefillBuckets { get; set; }

        public int[]? DecodeBuckets { get; set; }

        /// <summary>Batch buckets (version 2); absent means <c>[1]</c>.</summary>
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public int[]? BatchBuckets { get; set; }

        public DecodeConvention Convention { get; set; }

        public string? Statistic { get; set; }

        public double RelativeNoise { get; set; }

        /// <summary>How intervals are made (level, excess quantiles, repeats they come from). Files written before it existed have
        /// none and get <see cref="IntervalCalibration.Fallback"/>: the relative noise as a normal spread, above the point for the
        /// <c>min</c> statistic.</summary>
        public IntervalCalibration? Calibration { get; set; }

        public PrefillValues[]? Prefill { get; set; }

        public DecodeDocument[]? Decode { get; set; }

        /// <summary>Present on a what-if model (never profiled; read from another profile's cost curves), absent otherwise.</summary>
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public PredictedBlock? Predicted { get; set; }

        /// <summary>Chips per replica (<see cref="DeploymentLayout"/>); absent means 1. Older readers ignore it.</summary>
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public int? Chips { get; set; }

        /// <summary>The device kind, absent when unknown.</summary>
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public string? DeviceKind { get; set; }

        /// <summary>Price per chip-hour, absent when none.</summary>
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public double? PricePerChipHour { get; set; }

        /// <summary>The scheduling policy (version 3); absent means prefill-first padded.</summary>
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public SchedulingPolicy? Policy { get; set; }

        /// <summary>Cells whose cost was estimated from live traffic, by cell name; absent when every cost is profiled. Older readers
        /// ignore it (and read the estimated costs as the table's).</summary>
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public Dictionary<string, ProvenanceDocument>? Provenance { get; set; }
    }

    /// <summary>One cell's provenance in the file (<see cref="TrafficEstimate"/>).</summary>
    public sealed record ProvenanceDocument(string Source, double CostMs, double ProfiledMs, long Steps, double WindowStartMs, double WindowEndMs,
        DateTimeOffset EstimatedAt);

    /// <summary>One decode value in the file; <see cref="Batch"/> is written by version 2 only.</summary>
    public sealed record DecodeDocument(
        int Edge,
        double StepMs,
        double StepStandardError,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Batch = null);
}
