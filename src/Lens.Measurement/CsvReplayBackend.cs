using Lens.Core;

namespace Lens.Measurement;


/// <summary>
/// "A CSV of measurements made elsewhere" (architecture.md, layer 2): answers a request (I, O) with a measurement of that pair from
/// the file, cycling through its repeats in file order. A pair the file lacks is a non-transient failure that names the pair.
/// No waiting: the recorded latency is reported, not spent.
/// </summary>
public sealed class CsvReplayBackend : IMeasurementBackend
{
    private readonly Dictionary<(int Input, int Output), MeasuredRequest[]> _byPair;
    private readonly Dictionary<(int Input, int Output), int> _next = [];
    private readonly string _source;
    private readonly Lock _gate = new();

    public CsvReplayBackend(IEnumerable<MeasuredRequest> measurements, string source = "measurements")
    {
        ArgumentNullException.ThrowIfNull(measurements);
        _source = source;
        _byPair = measurements
            .GroupBy(m => (m.InputLength, m.OutputLength))
            .ToDictionary(g => g.Key, g => g.ToArray());
        Count = _byPair.Values.Sum(v => v.Length);
    }

    /// <summary>Reads a measurements CSV (<see cref="LensCsv.ReadMeasurements"/>); a malformed file throws <see cref="CsvFormatException"/>.</summary>
    public static CsvReplayBackend Load(string path)
    {
        using var reader = new StreamReader(path);
        return FromReader(reader, path);
    }

    public static CsvReplayBackend FromReader(TextReader reader, string source) =>
        new(LensCsv.ReadMeasurements(reader, source).Rows, source);

    /// <summary>Measurements held, repeats included.</summary>
    public int Count { get; }

    /// <summary>The distinct (I, O) pairs that can be answered.</summary>
    public IReadOnlyCollection<(int Input, int Output)> Pairs => _byPair.Keys;

    public string Describe => $"replay of {Count} measurements from {_source}";

    public Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var key = (inputLength, outputLength);
        if (!_byPair.TryGetValue(key, out var repeats))
        {
            throw new MeasurementFailedException(
                $"{_source} has no measurement of I = {inputLength}, O = {outputLength} (it holds {_byPair.Count} distinct pairs)",
                isTransient: false);
        }

        MeasuredRequest m;
        lock (_gate)
        {
            var n = _next.GetValueOrDefault(key);
            m = repeats[n % repeats.Length];
            _next[key] = n + 1;
        }

        return Task.FromResult(new TimedRequest(m.InputLength, m.OutputLength, m.E2eMs, m.TtftMs));
    }
}
