using Lens.Core;

namespace Lens.Measurement.Tests;

public sealed class CsvReplayBackendTests
{
    private const string Csv = """
        bucket,input_len,output_len,e2e_ms,ttft_ms
        decode-16,1,1,10,10
        decode-16,1,15,40,9
        decode-16,1,15,42,11
        ,4,2,20,
        """;

    [Fact]
    public async Task Answers_each_pair_cycling_through_its_repeats_in_file_order()
    {
        var backend = CsvReplayBackend.FromReader(new StringReader(Csv), "made-elsewhere.csv");

        var e2e = new List<double>();
        for (var n = 0; n < 3; n++)
        {
            e2e.Add((await backend.MeasureAsync(1, 15)).E2eMs);
        }

        var single = await backend.MeasureAsync(4, 2);
        Assert.Equal([40, 42, 40], e2e);
        Assert.Null(single.TtftMs);
        Assert.Equal(4, backend.Count);
        Assert.Equal(3, backend.Pairs.Count);
        Assert.Contains("made-elsewhere.csv", backend.Describe, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_pair_is_a_non_transient_failure_naming_it()
    {
        var backend = CsvReplayBackend.FromReader(new StringReader(Csv), "made-elsewhere.csv");

        var e = await Assert.ThrowsAsync<MeasurementFailedException>(() => backend.MeasureAsync(3, 9));

        Assert.False(e.IsTransient);
        Assert.Contains("I = 3, O = 9", e.Message, StringComparison.Ordinal);
        Assert.Contains("made-elsewhere.csv", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Loads_from_a_file_and_rejects_a_malformed_one()
    {
        var dir = Directory.CreateTempSubdirectory("lens-csv-");
        try
        {
            var good = Path.Combine(dir.FullName, "good.csv");
            var bad = Path.Combine(dir.FullName, "bad.csv");
            await File.WriteAllTextAsync(good, Csv);
            await File.WriteAllTextAsync(bad, "input_len,output_len,e2e_ms\n1,1,-3\n");

            var backend = CsvReplayBackend.Load(good);
            Assert.Equal(10, (await backend.MeasureAsync(1, 1)).E2eMs);
            var e = Assert.Throws<CsvFormatException>(() => CsvReplayBackend.Load(bad));
            Assert.Equal(2, e.Line);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
