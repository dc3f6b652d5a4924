using Lens.Measurement;

namespace Lens.Engine.Tests;

public sealed class ReferenceEngineBackendTests : IDisposable
{
    private readonly ReferenceEngine _engine = ReferenceEngine.Create(TestProfiles.Tiny, warmup: false);

    public void Dispose() => _engine.Dispose();

    [Fact]
    public async Task Times_a_request_with_ttft_at_the_first_token()
    {
        IMeasurementBackend backend = new ReferenceEngineBackend(_engine);
        Assert.Contains("tiny", backend.Describe, StringComparison.Ordinal);
        var before = _engine.Counters;
        var timed = await backend.MeasureAsync(10, 20);
        Assert.Equal(10, timed.InputLength);
        Assert.Equal(20, timed.OutputLength);
        Assert.NotNull(timed.TtftMs);
        Assert.InRange(timed.TtftMs!.Value, 0, timed.E2eMs);
        Assert.Equal(19, timed.TokenGapsMs!.Count);
        Assert.All(timed.TokenGapsMs, g => Assert.True(g >= 0));
        Assert.True(timed.TtftMs + timed.TokenGapsMs.Sum() <= timed.E2eMs + 1e-6);
        Assert.Equal(19, _engine.Counters.DecodeSteps - before.DecodeSteps);
    }

    [Fact]
    public async Task One_token_requests_have_no_gaps()
    {
        var timed = await new ReferenceEngineBackend(_engine).MeasureAsync(64, 1);
        Assert.Empty(timed.TokenGapsMs!);
    }

    [Theory]
    [InlineData(65, 1)]
    [InlineData(64, 65)]
    [InlineData(0, 5)]
    public async Task Out_of_range_requests_fail_permanently(int inputLength, int outputLength)
    {
        var backend = new ReferenceEngineBackend(_engine);
        var ex = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(inputLength, outputLength));
        Assert.False(ex.IsTransient);
    }
}
