namespace Lens.Core.Tests;

public sealed class ObservedCsvTests
{
    [Fact]
    public void Replay_output_reads_as_observed_requests_and_failed_rows_are_skipped_and_counted()
    {
        const string csv = """
            arrival_ms,input_len,output_len,ttft_ms,e2e_ms,tpot_ms,send_lag_ms,error
            0,100,20,31.5,80.25,2.5,0.1,
            12.5,7,1,10,10,,0,
            20,7,5,,,,0,timeout after 30 s
            """;
        var rows = LensCsv.ReadObserved(new StringReader(csv), "measured.csv", out var failed);
        Assert.Equal(1, failed);
        // The client's send lag is taken out: the server saw the first request arrive 0.1 ms late, and 0.1 ms less latency.
        Assert.Equal([new ObservedRequest(0.1, 100, 20, 31.5 - 0.1, 80.25 - 0.1), new ObservedRequest(12.5, 7, 1, 10, 10)], rows.Rows);
        Assert.Equal([2, 3], rows.Lines);
    }

    [Theory]
    [InlineData("1,10,5,30,40,30", "send lag 30 ms is out of range")]
    [InlineData("1,10,5,30,40,-1", "send lag -1 ms is out of range")]
    [InlineData("1,10,5,30,40,x", "'x' is not a finite number")]
    public void A_send_lag_that_cannot_be_is_named(string row, string message)
    {
        var ex = Assert.Throws<CsvFormatException>(() =>
            LensCsv.ReadObserved(new StringReader("arrival_ms,input_len,output_len,ttft_ms,e2e_ms,send_lag_ms\n" + row + "\n"), "obs.csv", out _));
        Assert.StartsWith("obs.csv:2: column 'send_lag_ms': ", ex.Message, StringComparison.Ordinal);
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Queue_and_replica_are_read_when_present()
    {
        var rows = LensCsv.ReadObserved(new StringReader("arrival_ms,input_len,output_len,ttft_ms,e2e_ms,queue_ms,replica\n5,3,4,20,50,2,r-1\n"),
            "obs.csv", out _);
        Assert.Equal(new ObservedRequest(5, 3, 4, 20, 50, 2, "r-1"), Assert.Single(rows.Rows));
    }

    [Theory]
    [InlineData("1,10,5,30,20", "obs.csv:2: end-to-end latency 20 ms")]
    [InlineData("1,0,5,30,40", "obs.csv:2: column 'input_len': 0 is out of range")]
    [InlineData("x,10,5,30,40", "obs.csv:2: column 'arrival_ms': 'x' is not a finite number")]
    [InlineData("-1,10,5,30,40", "obs.csv:2: arrival -1 is not a time")]
    public void A_bad_row_fails_the_file_naming_line_and_field(string row, string message)
    {
        var ex = Assert.Throws<CsvFormatException>(() =>
            LensCsv.ReadObserved(new StringReader("arrival_ms,input_len,output_len,ttft_ms,e2e_ms\n" + row + "\n"), "obs.csv", out _));
        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }
}
