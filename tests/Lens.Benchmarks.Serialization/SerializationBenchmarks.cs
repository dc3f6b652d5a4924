using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;
using BenchmarkDotNet.Attributes;
using Lens.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace Lens.Benchmarks;

/// <summary>
/// What one batch of predictions costs to put on the wire and take off it, both ways (request and result), per format: the HTTP API's
/// JSON (reflection metadata, as served), JSON with source-generated metadata, the binary batch form (<see cref="BatchCodec"/>), and
/// Orleans' serializer (the client-to-silo and silo-to-silo path). Compare with PredictionBenchmarks (tests/Lens.Benchmarks): composing a batch
/// of 1,000 costs about 18 us.
/// </summary>
[MemoryDiagnoser]
public class SerializationBenchmarks
{
    private readonly ArrayBufferWriter<byte> _buffer = new(1 << 20);
    private PredictManyRequest _request = null!;
    private PredictManyResult _result = null!;
    private Serializer _orleans = null!;
    private JsonSerializerOptions _sourceGenerated = null!;
    private ArrayRequest _arrayRequest = null!;
    private ArrayResult _arrayResult = null!;

    [Params(1000)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        var inputs = new int[Batch];
        var outputs = new int[Batch];
        var e2e = new double[Batch];
        var tpot = new double?[Batch];
        for (var n = 0; n < Batch; n++)
        {
            inputs[n] = rng.Next(1, 4097);
            outputs[n] = rng.Next(1, 8192 - inputs[n] + 1);
            e2e[n] = 20 + (rng.NextDouble() * 5000);
            tpot[n] = outputs[n] == 1 ? null : e2e[n] / outputs[n];
        }

        _request = new PredictManyRequest(inputs, outputs);
        _result = new PredictManyResult(e2e, [.. e2e.Select(v => v / 7)], tpot, [.. e2e.Select(v => v * 0.98)], [.. e2e.Select(v => v * 1.02)], 42);
        _arrayRequest = new ArrayRequest(inputs, outputs, false);
        _arrayResult = new ArrayResult(_result.E2eMs, _result.TtftMs, tpot, _result.E2eLowMs, _result.E2eHighMs, 42);
        _orleans = new ServiceCollection().AddSerializer(b => b.AddAssembly(typeof(PredictManyResult).Assembly).AddAssembly(typeof(ArrayResult).Assembly))
            .BuildServiceProvider()
            .GetRequiredService<Serializer>();
        _sourceGenerated = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        LensJson.Configure(_sourceGenerated);
        _sourceGenerated.TypeInfoResolver = BenchJsonContext.Default;
    }

    [Benchmark(Baseline = true)]
    public int JsonReflection() => Json(LensJson.Options);

    [Benchmark]
    public int JsonSourceGenerated() => Json(_sourceGenerated);

    [Benchmark]
    public int Binary()
    {
        _buffer.ResetWrittenCount();
        BatchCodec.WriteRequest(_buffer, _request);
        var request = BatchCodec.ReadRequest(new ReadOnlySequence<byte>(_buffer.WrittenMemory), 100_000);
        _buffer.ResetWrittenCount();
        BatchCodec.WriteResult(_buffer, _result);
        return request.InputLengths.Length + BatchCodec.ReadResult(_buffer.WrittenSpan).E2eMs.Length;
    }

    /// <summary>Orleans' generated codec for the records as they were before the binary surrogates (arrays element by element).</summary>
    [Benchmark]
    public int OrleansArrays()
    {
        var request = _orleans.Deserialize<ArrayRequest>(_orleans.SerializeToArray(_arrayRequest))!;
        return request.InputLengths.Length + _orleans.Deserialize<ArrayResult>(_orleans.SerializeToArray(_arrayResult))!.E2eMs.Length;
    }

    /// <summary>Orleans as the service runs it: the records go as <see cref="BatchCodec"/> bytes (surrogates).</summary>
    [Benchmark]
    public int OrleansBinary()
    {
        var request = _orleans.Deserialize<PredictManyRequest>(_orleans.SerializeToArray(_request))!;
        return request.InputLengths.Length + _orleans.Deserialize<PredictManyResult>(_orleans.SerializeToArray(_result))!.E2eMs.Length;
    }

    private int Json(JsonSerializerOptions options)
    {
        _buffer.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(_buffer))
        {
            JsonSerializer.Serialize(writer, _request, options);
        }

        var request = JsonSerializer.Deserialize<PredictManyRequest>(_buffer.WrittenSpan, options)!;
        _buffer.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(_buffer))
        {
            JsonSerializer.Serialize(writer, _result, options);
        }

        return request.InputLengths.Length + JsonSerializer.Deserialize<PredictManyResult>(_buffer.WrittenSpan, options)!.E2eMs.Length;
    }
}

[JsonSerializable(typeof(PredictManyRequest))]
[JsonSerializable(typeof(PredictManyResult))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;

[GenerateSerializer, Immutable, Alias("bench.ArrayRequest")]
public sealed record ArrayRequest([property: Id(0)] int[] InputLengths, [property: Id(1)] int[] OutputLengths, [property: Id(2)] bool Refined);

[GenerateSerializer, Immutable, Alias("bench.ArrayResult")]
public sealed record ArrayResult([property: Id(0)] double[] E2eMs, [property: Id(1)] double[] TtftMs, [property: Id(2)] double?[] TpotMs,
    [property: Id(3)] double[] E2eLowMs, [property: Id(4)] double[] E2eHighMs, [property: Id(5)] long ModelVersion);
