
namespace Lens.Core.Tests;

public sealed class TraceCsvTests
{
    [Fact]
    public void Reads_the_Azure_trace_format_with_arrivals_from_the_earliest_row_in_file_order()
    {
        const string text = """
            TIMESTAMP,ContextTokens,GeneratedTokens
            2023-11-16 18:15:46.6805900,4808,10
            2023-11-16 18:15:46.1805900,3180,8
            2023-11-16 18:15:47.6805900,110,27
            """;

        var rows = LensCsv.ReadAnyTrace(new StringReader(text), "azure.csv");

        Assert.Equal([new TraceRequest(500, 4808, 10), new TraceRequest(0, 3180, 8), new TraceRequest(1500, 110, 27)], rows.Rows);
        Assert.Equal([2, 3, 4], rows.Lines);
    }

    [Fact]
    public void Reads_the_LENS_trace_format_when_there_is_no_TIMESTAMP_column()
    {
        var rows = LensCsv.ReadAnyTrace(new StringReader("# a comment\narrival_ms,input_len,output_len\n0,5,6\n12.5,7,8\n"), "t.csv");

        Assert.Equal([new TraceRequest(0, 5, 6), new TraceRequest(12.5, 7, 8)], rows.Rows);
    }

    [Theory]
    [InlineData("2023-11-16 18:15:46.6805900,4808,10\nyesterday,1,1\n", "azure.csv:3: column 'TIMESTAMP': 'yesterday' is not a date-time")]
    [InlineData("2023-11-16 18:15:46.6805900,0,10\n", "azure.csv:2: column 'ContextTokens': 0 is out of range (allowed 1..)")]
    [InlineData("2023-11-16 18:15:46.6805900,5,-1\n", "azure.csv:2: column 'GeneratedTokens': -1 is out of range (allowed 1..)")]
    public void A_bad_Azure_row_names_its_file_line_and_column(string body, string message)
    {
        var ex = Assert.Throws<CsvFormatException>(() => LensCsv.ReadAnyTrace(new StringReader("TIMESTAMP,ContextTokens,GeneratedTokens\n" + body), "azure.csv"));

        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }
}
