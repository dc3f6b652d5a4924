using System.Diagnostics;
using Lens.Core;
using Microsoft.AspNetCore.Http;

namespace Lens.Measurement.Tests;


/// <summary>
/// A fake batched device behind <see cref="FakeOpenAiServer"/> (method.md, "Batched serving"): requests that arrive within
/// <see cref="Window"/> of a group's first one form the group (the profiler releases one group at a time); the group's clock starts when
/// the window closes; member p (arrival order) gets its first token after p prefills, and every decode step of the group runs at
/// (b, D): its end is <c>b * A + sum over steps of S[b, dec(I + k)]</c>. Token times are deadlines on one clock, so a late timer
/// never accumulates.
/// </summary>
internal sealed class FakeBatchedDevice(BucketSet buckets, double prefillMs, Func<int, int, double> stepMs)
{
    public static readonly TimeSpan Window = TimeSpan.FromMilliseconds(60);
    private readonly Lock _gate = new();
    private readonly List<int> _groupSizes = [];
    private Group? _open;

    /// <summary>Sizes of the groups seen, in order.</summary>
    public IReadOnlyList<int> GroupSizes
    {
        get
        {
            lock (_gate)
            {
                return [.. _groupSizes];
            }
        }
    }

    public async Task HandleAsync(HttpContext ctx, CompletionCall call)
    {
        Group group;
        int position;
        var opened = false;
        lock (_gate)
        {
            if (_open is null)
            {
                _open = new Group(call.ArrivedAt + (long)(Window.TotalSeconds * Stopwatch.Frequency));
                opened = true;
            }

            group = _open;
            position = ++group.Count;
        }

        if (opened)
        {
            _ = Task.Run(() => CloseAsync(group));
        }

        var size = await group.Closed.Task;
        var input = call.PromptTokens;
        var output = call.MaxTokens;
        ctx.Response.ContentType = "text/event-stream";
        var at = prefillMs * position;
        for (var n = 0; n < output; n++)
        {
            if (n == 1)
            {
                at = prefillMs * size; // decode starts after the group's last prefill
            }

            if (n >= 1)
            {
                at += stepMs(size, buckets.Decode[buckets.DecodeIndex(buckets.StepLength(input, n))]);
            }

            await MonotonicClock.WaitUntilAsync(group.Start + (long)(at / 1000 * Stopwatch.Frequency), ctx.RequestAborted);
            var finish = n == output - 1 ? "\"length\"" : "null";
            await FakeOpenAiServer.WriteEventAsync(ctx, $$"""{"choices":[{"index":0,"text":" t{{n}}","finish_reason":{{finish}}}]}""");
        }

        await FakeOpenAiServer.WriteEventAsync(ctx,
            $$$"""{"choices":[],"usage":{"prompt_tokens":{{{input}}},"completion_tokens":{{{output}}},"total_tokens":{{{input + output}}}}}""");
        await FakeOpenAiServer.WriteEventAsync(ctx, "[DONE]");
    }

    private async Task CloseAsync(Group group)
    {
        await MonotonicClock.WaitUntilAsync(group.Start, CancellationToken.None);
        lock (_gate)
        {
            _open = null;
            _groupSizes.Add(group.Count);
        }

        group.Closed.SetResult(group.Count);
    }

    private sealed class Group(long start)
    {
        public long Start { get; } = start;

        public int Count { get; set; }

        public TaskCompletionSource<int> Closed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

public sealed class GroupProfilingTests : IDisposable
{
    // P = 16,32; D = 16,32,64; batch buckets 1,2,4: per batch bucket the pairs (1; 1,15), (17; 1,15), (32; 1,32).
    private static readonly BucketSet Buckets = new([16, 32], [16, 32, 64], DecodeConvention.AfterAppend, [1, 2, 4]);
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lens-groups-");

    private string OutputPath => Path.Combine(_dir.FullName, "m.csv");

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>The device's true step cost: more rows and longer buckets cost more.</summary>
    private static double Step(int batch, int decodeEdge) => 2 + (batch / 2.0) + (decodeEdge / 32.0);

    private static OpenAiCompletionsBackend Backend(FakeOpenAiServer server) =>
        new(new OpenAiCompletionsOptions { BaseAddress = server.BaseAddress, Model = "fake-model", MaxRetries = 0 });

    private static List<MeasuredRequest> ReadBack(string path)
    {
        using var reader = new StreamReader(path);
        return [.. LensCsv.ReadMeasurements(reader, path).Rows];
    }

    [Fact]
    public async Task A_group_of_four_is_sent_concurrently_and_every_request_gets_a_row_with_batch_and_group()
    {
        var device = new FakeBatchedDevice(Buckets, 2, Step);
        await using var server = await FakeOpenAiServer.StartAsync(device.HandleAsync);
        using var backend = Backend(server);
        PlanRow[] rows = [new(new BucketId(BucketKind.Decode, 16, 4), 1, 5, 0, PlanRole.Slope, 4)];

        var summary = await new ProfileRunner(backend).RunAsync(rows, OutputPath); // a warm-up group, then the timed one

        Assert.True(summary.Complete, summary.Describe());
        Assert.Equal(8, server.CompletionRequests);
        Assert.Equal(4, server.MaxInFlight);
        Assert.Equal(4, device.GroupSizes[^1]);
        Assert.Equal(LensCsv.BatchedMeasurementHeader, File.ReadLines(OutputPath).First());
        var written = ReadBack(OutputPath);
        Assert.Equal(4, written.Count);
        Assert.All(written, m => Assert.Equal((1, 5, 4, 0L, new BucketId(BucketKind.Decode, 16, 4)), (m.InputLength, m.OutputLength, m.Batch, m.Group!.Value, m.Bucket!.Value)));

        // All four end together, at or after the group's device time (the window, 4 prefills, 4 steps), timed from one release.
        var ends = written.Select(m => m.E2eMs).ToArray();
        Assert.All(written, m => Assert.True(m.TtftMs <= m.E2eMs && m.E2eMs >= FakeBatchedDevice.Window.TotalMilliseconds + 8 + (4 * Step(4, 16))));
        Assert.True(ends.Max() - ends.Min() < 25, $"ends {string.Join(", ", ends)}");
    }

    [Fact]
    public async Task A_transient_fault_of_one_request_re_runs_the_whole_group()
    {
        // The second request to arrive gets a 503; the group's other requests of that attempt are cancelled, and all four go again.
        await using var server = await FakeOpenAiServer.StartAsync((ctx, call) => call.Number == 2
            ? FakeOpenAiServer.ErrorAsync(ctx, 503, "busy")
            : FakeOpenAiServer.StreamAsync(ctx, call.PromptTokens, call.MaxTokens));
        var retries = new List<MeasurementRetry>();
        using var backend = new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = server.BaseAddress, Model = "fake-model", MaxRetries = 1, RetryBaseDelay = TimeSpan.Zero, OnRetry = retries.Add,
        });

        var results = await ((IMeasurementBackend)backend).MeasureGroupAsync(3, 2, 4);

        Assert.Equal(4, results.Count);
        Assert.All(results, r => Assert.Equal((3, 2), (r.InputLength, r.OutputLength)));
        var retry = Assert.Single(retries);
        Assert.Contains("503", retry.Reason);
        Assert.InRange(server.CompletionRequests, 6, 8); // the failed one and at least one more in the first attempt, then four
    }

    [Fact]
    public async Task Resume_re_runs_an_interrupted_group_whole_and_drops_its_partial_rows()
    {
        var device = new FakeBatchedDevice(Buckets, 1, (_, _) => 0.2);
        await using var server = await FakeOpenAiServer.StartAsync(device.HandleAsync);
        using var backend = Backend(server);
        var plan = ProfilingPlanner.Create(Buckets, new PlanOptions(Seed: 3)).Rows;
        var runner = new ProfileRunner(backend, new ProfileRunOptions { WarmupsPerBucket = 0 });
        Assert.True((await runner.RunAsync(plan, OutputPath)).Complete);
        var full = ReadBack(OutputPath);

        // Cut two of the four rows of a batch-4 group out of the middle of the file, as an interrupted run would leave them.
        var cut = full.First(m => m.Batch == 4).Group!.Value;
        var lines = File.ReadAllLines(OutputPath).ToList();
        var at = lines.FindIndex(l => l.Contains($",4,{cut},", StringComparison.Ordinal));
        lines.RemoveRange(at, 2);
        File.WriteAllLines(OutputPath, lines);
        var before = server.CompletionRequests;

        var again = await runner.RunAsync(plan, OutputPath);

        Assert.Equal((1, plan.Count - 1, 2), (again.Measured, again.Skipped, again.DroppedPartialGroupRows));
        Assert.Equal(4, server.CompletionRequests - before); // the whole group, once
        var rows = ReadBack(OutputPath);
        Assert.Equal(plan.Sum(r => r.Batch), rows.Count);
        Assert.All(rows.GroupBy(m => m.Group), g => Assert.Equal(g.First().Batch, g.Count()));
        Assert.Equal(4, rows.Count(m => m.Group == cut));
    }

    [Fact]
    public async Task Profiling_a_batched_device_and_fitting_recovers_every_step_cost()
    {
        // Wider buckets than the other tests: 30 to 63 steps between a pair's requests, so a late timer moves a slope little.
        var buckets = new BucketSet([16, 32], [32, 64, 128], DecodeConvention.AfterAppend, [1, 2, 4]);
        var device = new FakeBatchedDevice(buckets, 3, Step);
        await using var server = await FakeOpenAiServer.StartAsync(device.HandleAsync);
        using var backend = Backend(server);
        var plan = ProfilingPlanner.Create(buckets, new PlanOptions(Repeats: 3, Seed: 5));

        var summary = await new ProfileRunner(backend).RunAsync(plan, OutputPath);

        Assert.True(summary.Complete, summary.Describe());
        Assert.All(device.GroupSizes, b => Assert.Contains(b, buckets.Batch));
        var model = BucketFitter.Fit(buckets, ReadBack(OutputPath), RepeatStatistic.Min);
        Assert.True(model.IsComplete);
        var errors = model.DecodeBuckets.Select(d => (d.Batch, d.Edge, Error: Math.Abs(d.StepMs - Step(d.Batch, d.Edge)) / Step(d.Batch, d.Edge))).ToArray();
        Assert.Equal(9, errors.Length);
        Assert.All(errors, e => Assert.True(e.Error < 0.04, string.Join("; ", errors.Select(x => $"b{x.Batch} d{x.Edge}: {x.Error:P2}"))));
    }
}
