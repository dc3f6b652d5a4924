using System.Diagnostics;
using Lens.Core;

namespace Lens.Measurement.Tests;

public sealed class LoadReplayTests
{
    [Fact]
    public async Task Sends_each_request_no_earlier_than_its_arrival_and_reports_rows_in_trace_order()
    {
        // Each request is told apart by its prompt length; 7 tokens gets a 400, which must be reported, not dropped.
        await using var server = await FakeOpenAiServer.StartAsync((ctx, call) => call.PromptTokens == 7
            ? FakeOpenAiServer.ErrorAsync(ctx, 400, "prompt too long for this test")
            : FakeOpenAiServer.StreamAsync(ctx, call.PromptTokens, call.MaxTokens));
        using var backend = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = server.BaseAddress, Model = "fake-model", MaxRetries = 0,
        });
        TraceRequest[] trace = [new(120, 3, 4), new(0, 1, 2), new(60, 2, 1), new(60, 7, 3), new(200, 5, 6)];

        var before = Stopwatch.GetTimestamp();
        var result = await LoadReplay.RunAsync(backend, trace, new LoadReplayOptions(TimeScale: 1, MaxConcurrency: 8));

        Assert.Equal(trace.Select(t => (t.ArrivalMs, t.InputLength, t.OutputLength)),
            result.Requests.Select(r => (r.ArrivalMs, r.InputLength, r.OutputLength)));
        foreach (var call in server.Calls)
        {
            var due = trace.Single(t => t.InputLength == call.PromptTokens).ArrivalMs;
            var sentAfter = Stopwatch.GetElapsedTime(before, call.ArrivedAt).TotalMilliseconds;
            Assert.True(sentAfter >= due, $"I = {call.PromptTokens} reached the server {sentAfter:0.###} ms after the start, before its arrival {due} ms");
        }

        Assert.Equal(5, server.Calls.Count);
        var failed = Assert.Single(result.Requests, r => r.Failed);
        Assert.Equal(7, failed.InputLength);
        Assert.Contains("prompt too long for this test", failed.Error);
        Assert.All(result.Requests.Where(r => !r.Failed), r => Assert.True(r.TtftMs > 0 && r.TtftMs <= r.E2eMs && r.SendLagMs >= 0));
        Assert.True(double.IsNaN(result.Requests[2].TpotMs)); // O = 1: no decode step
        Assert.Equal((5, 1), (result.Summary.Requests, result.Summary.Failed));
        Assert.True(result.Summary.DurationMs >= 200);

        using var text = new StringWriter();
        LoadReplay.Write(text, result.Requests);
        var lines = text.ToString().TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(LoadReplay.Header, lines[0]);
        Assert.Equal(6, lines.Length);
        Assert.StartsWith("60,7,3,,,,,", lines[4], StringComparison.Ordinal);
        Assert.StartsWith("60,2,1,", lines[3], StringComparison.Ordinal);
        Assert.Equal("", lines[3].Split(',')[5]); // tpot_ms empty when O = 1
    }

    [Fact]
    public async Task A_concurrency_limit_holds_requests_back_and_their_wait_counts()
    {
        await using var server = await FakeOpenAiServer.StartAsync(async (ctx, call) =>
        {
            await Task.Delay(100, ctx.RequestAborted);
            await FakeOpenAiServer.StreamAsync(ctx, call.PromptTokens, call.MaxTokens);
        });
        using var backend = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions { BaseAddress = server.BaseAddress, Model = "m", MaxRetries = 0 });
        TraceRequest[] trace = [new(0, 1, 2), new(0, 2, 2), new(0, 3, 2)];

        var result = await LoadReplay.RunAsync(backend, trace, new LoadReplayOptions(MaxConcurrency: 1));

        Assert.Equal(1, server.MaxInFlight);
        Assert.True(result.Requests[2].SendLagMs >= 200, $"third request sent {result.Requests[2].SendLagMs} ms after its arrival");
        Assert.True(result.Requests[2].E2eMs >= 300);
    }
}
