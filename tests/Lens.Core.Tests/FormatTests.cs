namespace Lens.Core.Tests;

public class FormatTests
{
    private static CsvRows<MeasuredRequest> Read(string text) => LensCsv.ReadMeasurements(new StringReader(text), "m.csv");

    [Fact]
    public void Measurements_read_with_optional_columns_in_any_order()
    {
        var rows = Read("# comment\nextra,e2e_ms,output_len,input_len,ttft_ms,bucket\nx,12.5,3,7,4,decode-16\n\ny,8,1,7,,\n");
        Assert.Equal([new MeasuredRequest(7, 3, 12.5, 4, BucketId.Parse("decode-16")), new MeasuredRequest(7, 1, 8)], rows.Rows);
        Assert.Equal([3, 5], rows.Lines);
    }

    [Theory]
    [InlineData("", "m.csv:1: is empty; expected a header with at least input_len,output_len,e2e_ms")]
    [InlineData("input_len,e2e_ms\n1,2\n", "m.csv:1: header lacks output_len; expected a header with at least input_len,output_len,e2e_ms")]
    [InlineData("input_len,output_len,e2e_ms\n1,2\n", "m.csv:2: has 2 fields, the header has 3")]
    [InlineData("input_len,output_len,e2e_ms\n1,2,3\nx,2,3\n", "m.csv:3: column 'input_len': 'x' is not a whole number")]
    [InlineData("input_len,output_len,e2e_ms\n0,2,3\n", "m.csv:2: column 'input_len': 0 is out of range (allowed 1..)")]
    [InlineData("input_len,output_len,e2e_ms\n1,2,-3\n", "m.csv:2: column 'e2e_ms': -3 is not positive (a latency in ms must be above 0)")]
    [InlineData("input_len,output_len,e2e_ms\n1,2,NaN\n", "m.csv:2: column 'e2e_ms': 'NaN' is not a finite number")]
    [InlineData("input_len,output_len,e2e_ms,ttft_ms\n1,2,3,4\n", "m.csv:2: column 'ttft_ms': TTFT 4 ms is above E2E 3 ms; the first token cannot come after the last")]
    [InlineData("input_len,output_len,e2e_ms,bucket\n1,2,3,decode\n", "m.csv:2: column 'bucket': 'decode' is not a bucket id (prefill-N or decode-N)")]
    [InlineData("input_len,output_len,e2e_ms,input_len\n", "m.csv:1: column 'input_len': column appears twice in the header")]
    public void Malformed_measurements_name_file_line_column_and_reason(string text, string message) =>
        Assert.Equal(message, Assert.Throws<CsvFormatException>(() => Read(text)).Message);

    [Fact]
    public void Plans_and_measurements_round_trip()
    {
        var plan = ProfilingPlanner.Create(BucketPresets.NxdInference(512, 1024), new PlanOptions(Repeats: 2, Seed: 3));
        var writer = new StringWriter();
        LensCsv.WritePlan(writer, plan.Rows);
        Assert.Equal(plan.Rows, LensCsv.ReadPlan(new StringReader(writer.ToString()), "plan.csv").Rows);

        MeasuredRequest[] ms = [new(1, 2, 3.25, 1.5, BucketId.Parse("decode-8")), new(4, 1, 1.0 / 3)];
        writer = new StringWriter();
        LensCsv.WriteMeasurements(writer, ms);
        Assert.Equal(ms, Read(writer.ToString()).Rows);
    }

    [Fact]
    public void Models_round_trip_through_json()
    {
        var buckets = BucketPresets.NxdInference(512, 1024, DecodeConvention.BeforeAppend);
        var device = Synthetic.Random(buckets, 9);
        var model = BucketFitter.Fit(buckets, device.Measure(ProfilingPlanner.Create(buckets).Rows), RepeatStatistic.Parse("p20"));
        var json = ModelJson.Serialize(model);
        var back = ModelJson.Deserialize(json, "model.json");
        Assert.Equal(model.Buckets, back.Buckets);
        Assert.Equal(model.PrefillBuckets, back.PrefillBuckets);
        Assert.Equal(model.DecodeBuckets, back.DecodeBuckets);
        Assert.Equal("p20", back.Statistic.ToString());
        Assert.Equal(model.Predict(100, 300), back.Predict(100, 300));
        Assert.Equal(json, ModelJson.Serialize(back));
    }

    [Fact]
    public void Policies_round_trip_and_default_files_keep_their_version()
    {
        var buckets = BucketPresets.NxdInference(512, 1024);
        var model = BucketFitter.Fit(buckets, Synthetic.Random(buckets, 3).Measure(ProfilingPlanner.Create(buckets).Rows), RepeatStatistic.Parse("min"));
        Assert.Contains("\"version\": 1", ModelJson.Serialize(model));
        Assert.DoesNotContain("policy", ModelJson.Serialize(model));
        Assert.True(ModelJson.Deserialize(ModelJson.Serialize(model), "m.json").Policy.IsDefault);

        SchedulingPolicy[] policies =
        [
            SchedulingPolicy.ChunkedPrefill(256, [8, 32, 128, 256], 8, 1024),
            SchedulingPolicy.PagedDecode(16, 1024),
        ];
        foreach (var policy in policies)
        {
            var json = ModelJson.Serialize(model.WithLayout(new DeploymentLayout(2)).WithPolicy(policy));
            Assert.Contains($"\"version\": {ModelJson.Version}", json);
            var back = ModelJson.Deserialize(json, "m.json");
            Assert.Equal(policy, back.Policy);
            Assert.Equal(2, back.Layout.Chips);
            Assert.Equal(json, ModelJson.Serialize(back));
        }
    }

    [Theory]
    [InlineData("{\"maxNumBatchedTokens\":256,\"tokenBuckets\":[8,128],\"maxNumSeqs\":8,\"scheduler\":\"chunked\"}", "largest token bucket 128 is below maxNumBatchedTokens 256")]
    [InlineData("{\"scheduler\":\"chunked\",\"maxNumBatchedTokens\":0}", "maxNumBatchedTokens 0 is outside 1..")]
    [InlineData("{\"execution\":\"paged\"}", "blockSize 0 is outside 1..")]
    [InlineData("{\"blockSize\":16}", "blockSize belongs to paged execution")]
    [InlineData("{\"scheduler\":\"chunked\",\"execution\":\"paged\",\"blockSize\":16}", "chunked prefill with paged execution is not modelled")]
    [InlineData("{\"scheduler\":\"round-robin\"}", "not a LENS model file")]
    public void Bad_policies_are_refused_naming_the_field(string policy, string expected)
    {
        var json = "{\"format\":\"lens-model\",\"version\":3,\"prefillBuckets\":[8],\"decodeBuckets\":[16],\"statistic\":\"min\"," +
                   "\"prefill\":[{\"edge\":8,\"aMs\":1,\"aStandardError\":0,\"ttftMs\":1,\"ttftStandardError\":0,\"plateauSpread\":0}]," +
                   "\"decode\":[{\"edge\":16,\"stepMs\":1,\"stepStandardError\":0}],\"policy\":" + policy + "}";
        Assert.Contains(expected, Assert.Throws<FormatException>(() => ModelJson.Deserialize(json, "model.json")).Message);
    }

    [Theory]
    [InlineData("{", "not a LENS model file")]
    [InlineData("{\"format\":\"other\"}", "not a LENS model file (format is 'other', expected 'lens-model')")]
    [InlineData("{\"format\":\"lens-model\",\"version\":9}", "model format version 9 is not supported")]
    [InlineData("{\"format\":\"lens-model\",\"version\":1,\"prefillBuckets\":[8],\"decodeBuckets\":[4]}", "invalid model: the longest prompt")]
    public void Bad_model_files_are_refused_with_the_reason(string json, string expected) =>
        Assert.Contains(expected, Assert.Throws<FormatException>(() => ModelJson.Deserialize(json, "model.json")).Message);
}
