using System.Buffers;
using Lens.Abstractions;

namespace Lens.Service.Tests;

/// <summary>The binary batch form (<see cref="BatchCodec"/>): exact round trips, and every malformed body refused with what is wrong.</summary>
public sealed class BatchCodecTests
{
    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(1000, false)]
    [InlineData(12345, true)]
    public void Requests_and_results_round_trip_exactly(int count, bool refined)
    {
        var rng = new Random(count);
        var request = new PredictManyRequest([.. Enumerable.Range(0, count).Select(_ => rng.Next(1, 100_000))],
            [.. Enumerable.Range(0, count).Select(_ => rng.Next(1, 100_000))], refined);
        var writer = new ArrayBufferWriter<byte>();
        BatchCodec.WriteRequest(writer, request);
        Assert.Equal(BatchCodec.RequestLength(count), writer.WrittenCount);
        Assert.Equal(writer.WrittenSpan.ToArray(), BatchCodec.EncodeRequest(request));
        var decoded = BatchCodec.ReadRequest(new ReadOnlySequence<byte>(writer.WrittenMemory), count);
        Assert.Equal(request.InputLengths, decoded.InputLengths);
        Assert.Equal(request.OutputLengths, decoded.OutputLengths);
        Assert.Equal(refined, decoded.Refined);

        double[] Column() => [.. Enumerable.Range(0, count).Select(_ => rng.NextDouble() * 1e4)];
        var result = new PredictManyResult(Column(), Column(), [.. Enumerable.Range(0, count).Select(i => i % 3 == 0 ? (double?)null : rng.NextDouble())],
            Column(), Column(), long.MaxValue - count);
        var bytes = BatchCodec.EncodeResult(result);
        Assert.Equal(BatchCodec.ResultLength(count), bytes.Length);
        var back = BatchCodec.ReadResult(bytes);
        Assert.Equal(result.E2eMs, back.E2eMs);
        Assert.Equal(result.TtftMs, back.TtftMs);
        Assert.Equal(result.TpotMs, back.TpotMs);
        Assert.Equal(result.E2eLowMs, back.E2eLowMs);
        Assert.Equal(result.E2eHighMs, back.E2eHighMs);
        Assert.Equal(result.ModelVersion, back.ModelVersion);
    }

    [Fact]
    public void Malformed_requests_say_what_is_wrong()
    {
        var valid = BatchCodec.EncodeRequest(new PredictManyRequest([1, 2, 3], [4, 5, 6]));
        string Refused(byte[] body, int max = 10) =>
            Assert.Throws<FormatException>(() => BatchCodec.ReadRequest(new ReadOnlySequence<byte>(body), max)).Message;

        Assert.Contains("12-byte header", Refused(valid[..5]), StringComparison.Ordinal);
        Assert.Contains("\"LNSQ\", 1", Refused(With(valid, 4, 2)), StringComparison.Ordinal);
        Assert.Contains("flags", Refused(With(valid, 5, 2)), StringComparison.Ordinal);
        Assert.Contains("count (bytes 8-11) is 3; it must be 0..2", Refused(valid, max: 2), StringComparison.Ordinal);
        Assert.Contains("count (bytes 8-11) is -1", Refused(With(With(With(With(valid, 8, 255), 9, 255), 10, 255), 11, 255)), StringComparison.Ordinal);
        Assert.Contains("the body has 37 bytes; a request of 3 predictions has 36", Refused([.. valid, 0]), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => BatchCodec.EncodeRequest(new PredictManyRequest([1, 2], [1])));
        Assert.Throws<FormatException>(() => BatchCodec.ReadResult(valid));
        var result = BatchCodec.EncodeResult(new PredictManyResult([1], [1], [null], [1], [1], 1));
        Assert.Throws<FormatException>(() => BatchCodec.ReadResult(result[..^1]));
    }

    private static byte[] With(byte[] bytes, int index, byte value)
    {
        var copy = bytes.ToArray();
        copy[index] = value;
        return copy;
    }
}
