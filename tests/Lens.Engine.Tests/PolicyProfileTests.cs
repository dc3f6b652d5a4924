using Lens.Core;

namespace Lens.Engine.Tests;

/// <summary>Engine profiles that carry a scheduling policy: shipped ones, round trips, errors naming the field, warm-up.</summary>
public sealed class PolicyProfileTests
{
    private const string Chunked = """
        { "name": "c", "layers": 1, "hidden": 16, "heads": 2, "kvHeads": 1, "ffn": 16, "vocab": 32, "seed": 1,
          "prefillBuckets": [16], "decodeBuckets": [16, 32],
          "policy": { "scheduler": "chunked", "maxNumBatchedTokens": 8, "tokenBuckets": [4, 8], "maxNumSeqs": 2 } }
        """;

    private const string Paged = """
        { "name": "p", "layers": 1, "hidden": 16, "heads": 2, "kvHeads": 1, "ffn": 16, "vocab": 32, "seed": 1,
          "prefillBuckets": [16], "decodeBuckets": [4, 8, 16], "batchBuckets": [1, 2],
          "policy": { "execution": "paged", "blockSize": 4 } }
        """;

    [Theory]
    [InlineData("tiny-chunked", SchedulerKind.Chunked, ExecutionKind.Padded)]
    [InlineData("tiny-paged", SchedulerKind.PrefillFirst, ExecutionKind.Paged)]
    [InlineData("small-chunked", SchedulerKind.Chunked, ExecutionKind.Padded)]
    [InlineData("small-paged", SchedulerKind.PrefillFirst, ExecutionKind.Paged)]
    [InlineData("nxdi-small-chunked", SchedulerKind.Chunked, ExecutionKind.Padded)]
    [InlineData("nxdi-small-paged", SchedulerKind.PrefillFirst, ExecutionKind.Paged)]
    public void Shipped_policy_profiles_load_and_are_listed(string name, SchedulerKind scheduler, ExecutionKind execution)
    {
        var profile = EngineProfiles.Load(name);
        Assert.Equal(name, profile.Name);
        Assert.Contains(name, EngineProfiles.Names);
        Assert.Equal((scheduler, execution), (profile.EffectivePolicy.Scheduler, profile.EffectivePolicy.Execution));
        Assert.Null(profile.EffectivePolicy.Check());
    }

    [Fact]
    public void Profiles_without_a_policy_are_prefill_first_padded_and_write_none()
    {
        var tiny = EngineProfiles.Load("tiny-batch");
        Assert.Null(tiny.Policy);
        Assert.True(tiny.EffectivePolicy.IsDefault);
        Assert.DoesNotContain("policy", tiny.ToJson(), StringComparison.Ordinal);
        Assert.Equal(4, tiny.MaxNumSeqs);
    }

    [Fact]
    public void Policies_round_trip_and_the_chunked_max_num_seqs_is_the_policys()
    {
        var chunked = EngineProfile.Parse(Chunked);
        Assert.Equal(SchedulingPolicy.ChunkedPrefill(8, [4, 8], 2), chunked.Policy);
        Assert.Equal(2, chunked.MaxNumSeqs);
        Assert.Equal(chunked.Policy, EngineProfile.Parse(chunked.ToJson()).Policy);
        Assert.Contains("\"scheduler\": \"chunked\"", chunked.ToJson(), StringComparison.Ordinal);

        var paged = EngineProfile.Parse(Paged);
        Assert.Equal(SchedulingPolicy.PagedDecode(4), paged.Policy);
        Assert.Equal(paged.Policy, EngineProfile.Parse(paged.ToJson()).Policy);
        Assert.Equal(2, paged.MaxNumSeqs);
    }

    [Theory]
    [InlineData(Chunked, "\"maxNumBatchedTokens\": 8", "\"maxNumBatchedTokens\": 0", "policy.maxNumBatchedTokens")]
    [InlineData(Chunked, "\"maxNumBatchedTokens\": 8", "\"maxNumBatchedTokens\": 1", "policy.maxNumBatchedTokens")] // below max_num_seqs
    [InlineData(Chunked, "[4, 8]", "[8, 4]", "policy.tokenBuckets")]
    [InlineData(Chunked, "[4, 8]", "[4]", "policy.tokenBuckets")] // below the budget
    [InlineData(Chunked, "\"maxNumSeqs\": 2", "\"maxNumSeqs\": 0", "policy.maxNumSeqs")]
    [InlineData(Chunked, "\"seed\": 1,", "\"seed\": 1, \"batchBuckets\": [1, 2],", "batchBuckets")]
    [InlineData(Chunked, "\"seed\": 1,", "\"seed\": 1, \"convention\": \"before-append\",", "convention")]
    [InlineData(Chunked, "\"scheduler\": \"chunked\",", "\"scheduler\": \"chunked\", \"execution\": \"paged\", \"blockSize\": 4,", "policy")]
    [InlineData(Paged, "\"blockSize\": 4", "\"blockSize\": 0", "policy.blockSize")]
    [InlineData(Paged, "\"blockSize\": 4", "\"blockSize\": 4, \"maxModelLen\": 16", "policy.maxModelLen")] // not above the longest prompt
    [InlineData(Paged, "\"blockSize\": 4", "\"blockSize\": 4, \"maxModelLen\": 65", "policy.maxModelLen")] // above 16 blocks of 4
    [InlineData(Paged, "\"blockSize\": 4", "\"blockSize\": 4, \"maxNumSeqs\": 2", "policy")]
    public void Bad_policies_name_the_field(string valid, string from, string to, string field)
    {
        var json = valid.Replace(from, to, StringComparison.Ordinal);
        Assert.NotEqual(valid, json);
        var ex = Assert.Throws<EngineProfileException>(() => EngineProfile.Parse(json, "bad.json"));
        Assert.Equal(field, ex.Field);
        Assert.StartsWith("bad.json: ", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tiny-chunked", EngineStepKind.Mixed, 3, 4)]
    [InlineData("tiny-paged", EngineStepKind.Decode, 3, 5)]
    public void Warm_up_runs_every_cell_of_the_policys_step_table(string name, EngineStepKind kind, int rows, int columns)
    {
        using var engine = ReferenceEngine.Create(EngineProfiles.Load(name), warmup: false);
        engine.Warmup(maxRounds: 1);
        var steps = engine.StepsSince(0);
        Assert.All(steps, s => Assert.Equal(kind, s.Kind));
        var cells = steps.Select(s => (s.Row, s.Column)).Distinct().Order().ToArray();
        Assert.Equal([.. Enumerable.Range(0, rows).SelectMany(r => Enumerable.Range(0, columns).Select(c => (r, c)))], cells);
        // The chunked scheduler never runs a prefill alone; paged: one stabilising round's prefill, then every prefill bucket.
        Assert.Equal(kind == EngineStepKind.Mixed ? 0 : 1 + 3, engine.Counters.PrefillPasses);
    }

    [Fact]
    public async Task Step_costs_by_batch_and_decode_bucket_refuse_other_policies_with_the_reason()
    {
        using var engine = ReferenceEngine.Create(EngineProfiles.Load("tiny-paged"), warmup: false);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => StepCosts.MeasureAsync(engine, 1, 1));
        Assert.Contains("prefill-first paged", ex.Message, StringComparison.Ordinal);
    }
}
