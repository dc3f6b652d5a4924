using System.Net;
using System.Text.Json;

namespace Lens.Engine.Tests;

/// <summary>A tiny-chunked engine (budget 16 tokens, token buckets 4, 8, 16; context buckets 16..128; 4 sequences) on loopback.</summary>
public sealed class ChunkedEngineServerFixture() : ServedEngine(EngineProfiles.Load("tiny-chunked"));

/// <summary>A tiny-paged engine (blocks of 4 tokens, block buckets 4..64, batch buckets 1, 2, 4; max_model_len 128) on loopback.</summary>
public sealed class PagedEngineServerFixture() : ServedEngine(EngineProfiles.Load("tiny-paged"));

/// <summary>
/// The real engine under the chunked and paged policies, served over loopback HTTP with a staged trace (requests queued, in order,
/// while the engine is held): its step log gives the hand-worked kinds and cells, and every request's tokens are those of the
/// prefill-first padded engine with the same weights (the math is the same up to float rounding).
/// </summary>
public sealed class ChunkedServerTests(ChunkedEngineServerFixture fixture) : IClassFixture<ChunkedEngineServerFixture>
{
    [Fact]
    public async Task A_staged_trace_runs_the_hand_worked_mixed_steps_and_chunked_prompts_give_the_unchunked_tokens()
    {
        var engine = fixture.Engine;
        (int[] Prompt, int O)[] requests = [([.. Enumerable.Range(10, 40)], 4), ([.. Enumerable.Range(100, 20)], 3)];
        var since = engine.Counters.DecodeSteps;
        var texts = await PolicyServing.SendStagedAsync(engine, fixture.Http, "tiny-chunked", requests);

        // Budget 16: a's prompt of 40 in chunks 16, 16, 8; b joins with the 8 left, then 12 beside a's first decode; then decodes.
        // (kind, token bucket, context bucket, tokens scheduled) and the cell's indices.
        var steps = engine.StepsSince(since);
        Assert.Equal(
            [(16, 16, 16), (16, 32, 16), (16, 64, 16), (16, 64, 13), (4, 64, 2), (4, 64, 2)],
            steps.Select(s => (s.Batch, s.Bucket.Edge, s.Rows)));
        Assert.Equal([(2, 0), (2, 1), (2, 2), (2, 2), (0, 2), (0, 2)], steps.Select(s => (s.Row, s.Column)));
        Assert.All(steps, s => Assert.Equal(EngineStepKind.Mixed, s.Kind));
        Assert.All(steps, s => Assert.Equal(s.Batch * s.Bucket.Edge, s.AttentionSpan * s.Batch)); // every row over K's span

        await PolicyServing.AssertPrefillFirstTokensAsync(requests, texts);
    }

    [Fact]
    public async Task Models_reports_the_chunked_policys_max_num_seqs()
    {
        using var doc = JsonDocument.Parse(await fixture.Http.GetStringAsync("models"));
        Assert.Equal(4, doc.RootElement.GetProperty("data")[0].GetProperty("max_num_seqs").GetInt32());
        Assert.Equal(128, doc.RootElement.GetProperty("data")[0].GetProperty("max_model_len").GetInt32());
    }
}

public sealed class PagedServerTests(PagedEngineServerFixture fixture) : IClassFixture<PagedEngineServerFixture>
{
    [Fact]
    public async Task A_staged_trace_waits_for_kv_blocks_and_decodes_at_the_block_bucket_of_the_batchs_blocks()
    {
        var engine = fixture.Engine;
        // Needs ceil((I + O) / 4) of a capacity of 64 blocks: 8, 8, 25, then d's 32 wait until b has left (a leaving is not enough).
        (int[] Prompt, int O)[] requests =
        [
            ([.. Enumerable.Range(1, 20)], 10), ([.. Enumerable.Range(50, 12)], 20), ([.. Enumerable.Range(70, 40)], 60),
            ([.. Enumerable.Range(120, 64)], 64),
        ];
        var since = engine.Counters.DecodeSteps;
        var texts = await PolicyServing.SendStagedAsync(engine, fixture.Http, "tiny-paged", requests);

        var steps = engine.StepsSince(since);
        Assert.Equal(19 + 63, steps.Count); // d's 63 steps start right after b's 19th
        int[] blockBuckets = [4, 8, 16, 32, 64];
        for (var s = 0; s < steps.Count; s++)
        {
            // Lengths after the append: a 21 + s (9 steps), b 13 + s (19), c 41 + s (59), d 65 + (s - 19) (63, from step 19).
            (int Length, bool Running)[] rows = [(21 + s, s < 9), (13 + s, s < 19), (41 + s, s < 59), (65 + s - 19, s >= 19)];
            var running = rows.Where(r => r.Running).ToArray();
            var blocks = running.Sum(r => (r.Length + 3) / 4);
            var column = Array.FindIndex(blockBuckets, edge => edge >= blocks);
            var batch = new[] { 1, 2, 4 }.First(b => b >= running.Length);
            Assert.Equal((EngineStepKind.Decode, batch, running.Length, blockBuckets[column], column, Array.IndexOf([1, 2, 4], batch)),
                (steps[s].Kind, steps[s].Batch, steps[s].Rows, steps[s].Bucket.Edge, steps[s].Column, steps[s].Row));
            Assert.Equal(blockBuckets[column] * 4, steps[s].AttentionSpan); // the padded blocks are attended, not the longest row
        }

        Assert.Equal([3, 4], steps.Select(s => s.Column).Distinct().Order()); // the block bucket grew with the batch's blocks
        await PolicyServing.AssertPrefillFirstTokensAsync(requests, texts);
    }

    [Fact]
    public async Task Requests_beyond_max_model_len_are_refused()
    {
        using var response = await fixture.Http.PostAsync("completions",
            EngineServerTests.Json("""{"model":"tiny-paged","prompt":[1,2,3],"max_tokens":126}"""));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("max_model_len 128", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}

/// <summary>Sends a staged trace to an engine's server and checks tokens against the prefill-first padded engine.</summary>
internal static class PolicyServing
{
    /// <summary>
    /// Holds the engine, posts each request in turn (waiting until it is queued, so the queue keeps their order), releases the
    /// engine and returns each completion's text.
    /// </summary>
    public static async Task<string[]> SendStagedAsync(ReferenceEngine engine, HttpClient http, string model, (int[] Prompt, int O)[] requests)
    {
        var sent = new List<Task<HttpResponseMessage>>();
        using (engine.Pause())
        {
            foreach (var (prompt, o) in requests)
            {
                sent.Add(http.PostAsync("completions", EngineServerTests.Json(
                    $$"""{"model":"{{model}}","prompt":[{{string.Join(',', prompt)}}],"max_tokens":{{o}}}""")));
                for (var spin = 0; spin < 3000 && engine.WaitingRequests < sent.Count; spin++)
                {
                    await Task.Delay(5);
                }

                Assert.Equal(sent.Count, engine.WaitingRequests);
            }
        }

        var texts = new string[requests.Length];
        for (var i = 0; i < sent.Count; i++)
        {
            using var response = await sent[i];
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            texts[i] = doc.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
        }

        return texts;
    }

    /// <summary>Each request's tokens equal those of the tiny profile's engine (the same weights, prefill-first padded, alone).</summary>
    public static async Task AssertPrefillFirstTokensAsync((int[] Prompt, int O)[] requests, string[] texts)
    {
        using var padded = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);
        for (var i = 0; i < requests.Length; i++)
        {
            var expected = await padded.GenerateAsync(requests[i].Prompt, requests[i].O);
            Assert.Equal(expected.Tokens, EngineTokenizer.Tokenize(texts[i], 256));
        }
    }
}
