namespace Lens.Cli.Tests;

/// <summary>Bad option values and unwritable outputs, by running the CLI: what the user typed is named, with what is allowed.</summary>
public sealed class OptionErrorTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    [Theory]
    [InlineData(new[] { "predict", "--model", "m.json", "--input-len", "abc", "--output-len", "3" },
        "--input-len: 'abc' is not a whole number; give decimal digits, e.g. 300")]
    [InlineData(new[] { "predict", "--model", "m.json", "--input-len", "#20", "--output-len", "3" },
        "--input-len: '#20' is not a whole number; give decimal digits")]
    [InlineData(new[] { "predict", "--model", "m.json", "--input-len", "3", "--output-len", "0x20" },
        "--output-len: '0x20' is not a whole number")]
    [InlineData(new[] { "plan", "--prefill-buckets", "8", "--decode-buckets", "8", "--out", "p.csv", "--repeats=99999999999" },
        "--repeats: '99999999999' is out of range (allowed -2147483648..2147483647)")]
    [InlineData(new[] { "plan", "--prefill-buckets", "8", "--decode-buckets", "8", "--out", "p.csv", "--seed", "1e3" },
        "--seed: '1e3' is not a whole number")]
    [InlineData(new[] { "plan", "--prefill-buckets", "8", "--decode-buckets", "8", "--out", "p.csv", "--repeats", "0" },
        "--repeats must be in 1..1000; got 0")]
    [InlineData(new[] { "plan", "--prefill-buckets", "8", "--decode-buckets", "8", "--out", "p.csv", "--max-span", "0" },
        "--max-span must be at least 1 decode step; got 0")]
    [InlineData(new[] { "plan", "--prefill-buckets", "128,abc", "--decode-buckets", "128,256", "--out", "p.csv" },
        "--prefill-buckets/--decode-buckets: prefill bucket #2 'abc' is not an integer")]
    [InlineData(new[] { "plan", "--prefill-buckets", "256,128", "--decode-buckets", "128,256", "--out", "p.csv" },
        "--prefill-buckets/--decode-buckets: prefill buckets are not ascending")]
    [InlineData(new[] { "fit", "--prefill-buckets", "128", "--decode-buckets", "", "--measurements", "m.csv", "--out", "x.json" },
        "--prefill-buckets/--decode-buckets: decode buckets are empty")]
    [InlineData(new[] { "plan", "--preset", "bogus", "--max-context", "8", "--seq-len", "16", "--out", "p.csv" },
        "--preset bogus: unknown preset 'bogus'")]
    public void Bad_option_values_are_usage_errors_that_name_the_option(string[] args, string message)
    {
        var r = _lens.Run(args);

        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"usage error: {message}", r.Stderr, StringComparison.Ordinal);
        Assert.Equal("", r.Stdout);
        Assert.False(File.Exists(_lens.PathOf("p.csv")));
    }

    [Fact]
    public void An_unwritable_out_names_the_path_given_never_the_temporary_file()
    {
        Directory.CreateDirectory(_lens.PathOf("taken"));
        _lens.Write("plain", "a file, not a folder");
        string[] plan = ["plan", "--prefill-buckets", "8", "--decode-buckets", "8,16"];

        var directory = _lens.Run([.. plan, "--out", "taken"]);
        var underFile = _lens.Run([.. plan, "--out", "plain/p.csv"]);

        Assert.Equal(1, directory.ExitCode);
        Assert.Contains("error: cannot write 'taken': it is a directory", directory.Stderr, StringComparison.Ordinal);
        Assert.Equal(1, underFile.ExitCode);
        Assert.Contains("error: cannot write 'plain/p.csv': ", underFile.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(".tmp-", directory.Stderr + underFile.Stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_lens.Folder, "*.tmp-*", SearchOption.AllDirectories));
    }
}
