namespace Lens.Core.Tests;

/// <summary>A cost re-estimated from live traffic written into the model with its provenance, and kept in the model file.</summary>
public sealed class TrafficEstimateTests
{
    private static readonly BucketId Cell = new(BucketKind.Decode, 256, 4);

    private static DeploymentModel Model()
    {
        var buckets = new BucketSet([64, 128], [128, 256], DecodeConvention.AfterAppend, [1, 4]);
        return new DeploymentModel(buckets,
            [new PrefillValues(64, 4, 0.1, 3, 0.1, double.NaN), new PrefillValues(128, 8, 0.2, 6, 0.1, double.NaN)],
            [.. new[] { 1, 4 }.SelectMany(b => new[] { 128, 256 }.Select(d => new DecodeValues(d, 0.5 + (0.1 * b) + (d * 0.001), 0.01, b)))],
            RepeatStatistic.Mean, 0.02);
    }

    private static TrafficEstimate Estimate(BucketId cell, double cost) =>
        new(cell, cost, 1.156, 1234, 1.7e12, 1.7e12 + 60_000, new DateTimeOffset(2026, 12, 7, 18, 0, 0, TimeSpan.Zero));

    [Fact]
    public void An_estimate_replaces_its_cells_cost_alone_and_records_where_it_came_from()
    {
        var model = Model();
        var estimated = model.WithTrafficEstimates([Estimate(Cell, 1.5), Estimate(new BucketId(BucketKind.Prefill, 128), 10)]);

        Assert.Equal(1.5, estimated.StepMs(1, 1));
        Assert.Equal(model.StepMs(1, 0), estimated.StepMs(1, 0));
        Assert.Equal(model.StepMs(0, 1), estimated.StepMs(0, 1)); // decode-256 at batch 1: another cell
        Assert.Equal(10, estimated.PrefillMs(1));
        Assert.Equal(6 * 10 / 8.0, estimated.TtftMs(1), 12); // TTFT scaled as A was
        Assert.Equal(model.PrefillMs(0), estimated.PrefillMs(0));
        Assert.Equal(ModelProvenance.Traffic, estimated.SourceOf(Cell));
        Assert.Equal(ModelProvenance.Profiled, estimated.SourceOf(new BucketId(BucketKind.Decode, 128, 4)));
        Assert.Equal(1234, estimated.Provenance[Cell].Steps);
        Assert.Empty(model.Provenance); // the original is unchanged

        // A later estimate of the same cell replaces the earlier one; layout and policy changes keep the provenance.
        var again = estimated.WithTrafficEstimates([Estimate(Cell, 1.7)]).WithLayout(new DeploymentLayout(2, "npu", 1.5));
        Assert.Equal(1.7, again.StepMs(1, 1));
        Assert.Equal(1.7, again.Provenance[Cell].CostMs);
        Assert.Equal(2, again.Provenance.Count);
    }

    [Fact]
    public void Invalid_estimates_and_cells_not_of_the_model_are_refused()
    {
        var model = Model();
        Assert.Throws<ArgumentException>(() => model.WithTrafficEstimates([Estimate(new BucketId(BucketKind.Decode, 256, 8), 1)]));
        Assert.Throws<ArgumentException>(() => model.WithTrafficEstimates([Estimate(Cell, double.NaN)]));
        Assert.Throws<ArgumentException>(() => model.WithTrafficEstimates([Estimate(Cell, -1)]));
        Assert.Throws<ArgumentException>(() => model.WithTrafficEstimates([Estimate(Cell, 1) with { WindowEndMs = 0 }]));
    }

    [Fact]
    public void The_model_file_carries_provenance_only_when_a_cost_came_from_traffic_and_reads_it_back()
    {
        var model = Model();
        var plain = ModelJson.Serialize(model);
        Assert.DoesNotContain("provenance", plain, StringComparison.Ordinal);
        Assert.Empty(ModelJson.Deserialize(plain, "plain.json").Provenance);

        var estimated = model.WithTrafficEstimates([Estimate(Cell, 1.5)]);
        var json = ModelJson.Serialize(estimated);
        Assert.Contains("\"provenance\"", json, StringComparison.Ordinal);
        Assert.Contains("\"decode-256-b4\"", json, StringComparison.Ordinal);
        var read = ModelJson.Deserialize(json, "estimated.json");
        Assert.Equal(estimated.Provenance[Cell], read.Provenance[Cell]);
        Assert.Equal(1.5, read.StepMs(1, 1));
        Assert.Equal(json, ModelJson.Serialize(read));

        var badSource = Assert.Throws<FormatException>(() => ModelJson.Deserialize(json.Replace("\"traffic\"", "\"guess\"", StringComparison.Ordinal), "m.json"));
        Assert.Contains("provenance.decode-256-b4.source", badSource.Message, StringComparison.Ordinal);
        var badCell = Assert.Throws<FormatException>(() => ModelJson.Deserialize(json.Replace("\"decode-256-b4\"", "\"decode-512-b4\"", StringComparison.Ordinal), "m.json"));
        Assert.Contains("m.json", badCell.Message, StringComparison.Ordinal);
    }
}
