using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Lens.Abstractions;

/// <summary>
/// The binary form of batch predictions over HTTP (media type <see cref="MediaType"/>), for callers that ask millions of questions:
/// JSON spends most of a batch's time writing and parsing numbers; this spends none. Little-endian, fixed layout:
/// <list type="bullet">
/// <item>request: <c>"LNSQ"</c>, version byte 1, flags byte (bit 0: refined), two zero bytes, int32 count, then count int32 input
/// lengths and count int32 output lengths;</item>
/// <item>result: <c>"LNSR"</c>, version byte 1, three zero bytes, int32 count, int64 model version, then count float64 each of E2E,
/// TTFT, TPOT (NaN where <c>O = 1</c>), E2E low and E2E high, in ms.</item>
/// </list>
/// </summary>
public static class BatchCodec
{
    public const string MediaType = "application/vnd.lens.batch";

    private const int HeaderLength = 12;
    private const int ResultHeaderLength = 20;
    private const byte Version = 1;
    private static ReadOnlySpan<byte> RequestMagic => "LNSQ"u8;
    private static ReadOnlySpan<byte> ResultMagic => "LNSR"u8;

    /// <summary>Bytes of an encoded request of <paramref name="count"/> predictions.</summary>
    public static int RequestLength(int count) => HeaderLength + (8 * count);

    /// <summary>Bytes of an encoded result of <paramref name="count"/> predictions.</summary>
    public static int ResultLength(int count) => ResultHeaderLength + (40 * count);

    public static void WriteRequest(IBufferWriter<byte> output, PredictManyRequest request) =>
        Write(output, request, RequestLength(request?.InputLengths.Length ?? 0), WriteRequest);

    public static byte[] EncodeRequest(PredictManyRequest request) => Encode(request, RequestLength(request?.InputLengths.Length ?? 0), WriteRequest);

    private static void WriteRequest(Span<byte> span, PredictManyRequest request)
    {
        var n = request.InputLengths.Length;
        if (request.OutputLengths.Length != n)
        {
            throw new ArgumentException($"{n} input lengths but {request.OutputLengths.Length} output lengths", nameof(request));
        }

        RequestMagic.CopyTo(span);
        span[4] = Version;
        span[5] = request.Refined ? (byte)1 : (byte)0;
        span[6] = span[7] = 0;
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], n);
        WriteInts(span.Slice(HeaderLength, 4 * n), request.InputLengths);
        WriteInts(span.Slice(HeaderLength + (4 * n), 4 * n), request.OutputLengths);
    }

    /// <summary>Decodes a request; a malformed one throws <see cref="FormatException"/> that says what is wrong and where.</summary>
    public static PredictManyRequest ReadRequest(ReadOnlySequence<byte> body, int maxCount)
    {
        Span<byte> header = stackalloc byte[HeaderLength];
        if (body.Length < HeaderLength)
        {
            throw new FormatException($"the body has {body.Length} bytes; a {MediaType} request starts with a {HeaderLength}-byte header");
        }

        body.Slice(0, HeaderLength).CopyTo(header);
        if (!header[..4].SequenceEqual(RequestMagic) || header[4] != Version)
        {
            throw new FormatException($"bytes 0-4 are not a {MediaType} request of version {Version} (\"LNSQ\", 1)");
        }

        if ((header[5] & ~1) != 0 || header[6] != 0 || header[7] != 0)
        {
            throw new FormatException("bytes 5-7 (flags) may only set bit 0 of byte 5 (refined)");
        }

        var n = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        if (n < 0 || n > maxCount)
        {
            throw new FormatException($"count (bytes 8-11) is {n}; it must be 0..{maxCount}");
        }

        if (body.Length != HeaderLength + (8L * n))
        {
            throw new FormatException($"the body has {body.Length} bytes; a request of {n} predictions has {HeaderLength + (8L * n)}");
        }

        var inputs = new int[n];
        var outputs = new int[n];
        body.Slice(HeaderLength, 4L * n).CopyTo(MemoryMarshal.AsBytes(inputs.AsSpan()));
        body.Slice(HeaderLength + (4L * n), 4L * n).CopyTo(MemoryMarshal.AsBytes(outputs.AsSpan()));
        if (!BitConverter.IsLittleEndian)
        {
            BinaryPrimitives.ReverseEndianness(inputs, inputs);
            BinaryPrimitives.ReverseEndianness(outputs, outputs);
        }

        return new PredictManyRequest(inputs, outputs, (header[5] & 1) != 0);
    }

    public static void WriteResult(IBufferWriter<byte> output, PredictManyResult result) =>
        Write(output, result, ResultLength(result?.E2eMs.Length ?? 0), WriteResult);

    public static byte[] EncodeResult(PredictManyResult result) => Encode(result, ResultLength(result?.E2eMs.Length ?? 0), WriteResult);

    private static void WriteResult(Span<byte> span, PredictManyResult result)
    {
        var n = result.E2eMs.Length;
        ResultMagic.CopyTo(span);
        span[4] = Version;
        span[5] = span[6] = span[7] = 0;
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], n);
        BinaryPrimitives.WriteInt64LittleEndian(span[12..], result.ModelVersion);
        var columns = span[ResultHeaderLength..];
        WriteDoubles(columns.Slice(0, 8 * n), result.E2eMs);
        WriteDoubles(columns.Slice(8 * n, 8 * n), result.TtftMs);
        for (var i = 0; i < n; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(columns.Slice((16 * n) + (8 * i), 8), result.TpotMs[i] ?? double.NaN);
        }

        WriteDoubles(columns.Slice(24 * n, 8 * n), result.E2eLowMs);
        WriteDoubles(columns.Slice(32 * n, 8 * n), result.E2eHighMs);
    }

    /// <summary>Decodes a result; a malformed one throws <see cref="FormatException"/>.</summary>
    public static PredictManyResult ReadResult(ReadOnlySpan<byte> body)
    {
        if (body.Length < ResultHeaderLength || !body[..4].SequenceEqual(ResultMagic) || body[4] != Version)
        {
            throw new FormatException($"not a {MediaType} result of version {Version}");
        }

        var n = BinaryPrimitives.ReadInt32LittleEndian(body[8..]);
        if (n < 0 || body.Length != ResultHeaderLength + (40L * n))
        {
            throw new FormatException($"a {MediaType} result of {body.Length} bytes cannot hold {n} predictions");
        }

        var columns = body[ResultHeaderLength..];
        var tpot = new double?[n];
        for (var i = 0; i < n; i++)
        {
            var value = BinaryPrimitives.ReadDoubleLittleEndian(columns.Slice((16 * n) + (8 * i), 8));
            tpot[i] = double.IsNaN(value) ? null : value;
        }

        return new PredictManyResult(ReadDoubles(columns.Slice(0, 8 * n)), ReadDoubles(columns.Slice(8 * n, 8 * n)), tpot,
            ReadDoubles(columns.Slice(24 * n, 8 * n)), ReadDoubles(columns.Slice(32 * n, 8 * n)),
            BinaryPrimitives.ReadInt64LittleEndian(body[12..]));
    }

    private delegate void SpanWriter<in T>(Span<byte> target, T value);

    private static void Write<T>(IBufferWriter<byte> output, T value, int length, SpanWriter<T> write)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(value);
        write(output.GetSpan(length)[..length], value);
        output.Advance(length);
    }

    private static byte[] Encode<T>(T value, int length, SpanWriter<T> write)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(value);
        var bytes = new byte[length];
        write(bytes, value);
        return bytes;
    }

    private static void WriteInts(Span<byte> target, int[] values)
    {
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(target);
            return;
        }

        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(target[(4 * i)..], values[i]);
        }
    }

    private static void WriteDoubles(Span<byte> target, double[] values)
    {
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(target);
            return;
        }

        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(target[(8 * i)..], values[i]);
        }
    }

    private static double[] ReadDoubles(ReadOnlySpan<byte> source)
    {
        var values = new double[source.Length / 8];
        if (BitConverter.IsLittleEndian)
        {
            source.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
            return values;
        }

        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadDoubleLittleEndian(source[(8 * i)..]);
        }

        return values;
    }
}

/// <summary>
/// Orleans carries batch requests and results in <see cref="BatchCodec"/>'s binary form too: its own codec writes every array element
/// with a field header (about 0.5 ms for a batch of 1,000 each way, against 18 us to compose it; docs/performance.md), while a byte
/// array is one copy.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.PredictManyRequest.bytes")]
public readonly record struct BatchPredictRequestSurrogate([property: Id(0)] byte[] Bytes);

[GenerateSerializer, Immutable, Alias("lens.PredictManyResult.bytes")]
public readonly record struct BatchPredictionResultSurrogate([property: Id(0)] byte[] Bytes);

[RegisterConverter]
public sealed class BatchPredictRequestConverter : IConverter<PredictManyRequest, BatchPredictRequestSurrogate>
{
    private const int MaxCount = (int.MaxValue - 12) / 8;

    public PredictManyRequest ConvertFromSurrogate(in BatchPredictRequestSurrogate surrogate) =>
        BatchCodec.ReadRequest(new ReadOnlySequence<byte>(surrogate.Bytes), MaxCount);

    public BatchPredictRequestSurrogate ConvertToSurrogate(in PredictManyRequest value) => new(BatchCodec.EncodeRequest(value));
}

[RegisterConverter]
public sealed class BatchPredictionResultConverter : IConverter<PredictManyResult, BatchPredictionResultSurrogate>
{
    public PredictManyResult ConvertFromSurrogate(in BatchPredictionResultSurrogate surrogate) => BatchCodec.ReadResult(surrogate.Bytes);

    public BatchPredictionResultSurrogate ConvertToSurrogate(in PredictManyResult value) => new(BatchCodec.EncodeResult(value));
}
