using System.Text.Json;
using System.Text.RegularExpressions;
using Lens.Core;

namespace Lens.Cli.Tests;

/// <summary><c>lens engine serve --twin</c>: serves a fitted model's twin; bad files and replica counts are clear errors.</summary>
public sealed partial class TwinCliTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    private void WriteModel(string name)
    {
        var buckets = new BucketSet([64], [64, 128], DecodeConvention.AfterAppend, [1, 2]);
        var model = new DeploymentModel(buckets, [new PrefillValues(64, 5, 0, double.NaN, 0, double.NaN)],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, 2 + b, 0, b)))], RepeatStatistic.Min, 0);
        _lens.Write(name, ModelJson.Serialize(model));
    }

    [GeneratedRegex(@"http://127\.0\.0\.1:\d+/v1/")]
    private static partial Regex Address();

    [Fact]
    public async Task Serves_the_twin_of_a_model_file_on_a_free_port()
    {
        WriteModel("tp1.json");
        using var server = _lens.Start("engine", "serve", "--twin", "tp1.json", "--port", "0", "--replicas", "2", "--host", "127.0.0.1");
        try
        {
            var line = await server.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(1)) ?? "";
            Assert.Contains("2 replica(s) behind one queue", line);
            using var http = new HttpClient { BaseAddress = new Uri(Address().Match(line).Value), Timeout = TimeSpan.FromSeconds(30) };
            using var models = JsonDocument.Parse(await http.GetStringAsync("models"));
            Assert.Equal("tp1", models.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
            using var body = new StringContent("""{"model":"tp1","prompt":[1,2,3],"max_tokens":4}""", System.Text.Encoding.UTF8, "application/json");
            using var answer = JsonDocument.Parse(await (await http.PostAsync("completions", body)).Content.ReadAsStringAsync());
            Assert.Equal(4, answer.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }
        finally
        {
            server.Kill(entireProcessTree: true);
        }
    }

    [Theory]
    [InlineData("missing.json", null, "--twin file 'missing.json' does not exist")]
    [InlineData("bad.json", null, "bad.json")]
    [InlineData("tp1.json", "0", "--replicas must be in 1..64; got 0")]
    [InlineData("tp1.json", "65", "--replicas must be in 1..64; got 65")]
    public void Bad_inputs_are_refused_with_the_reason(string model, string? replicas, string expected)
    {
        WriteModel("tp1.json");
        _lens.Write("bad.json", """{"formatVersion": 2, "buckets": "nonsense"}""");
        var run = _lens.Run(["engine", "serve", "--twin", model, "--port", "0", .. replicas is null ? Array.Empty<string>() : ["--replicas", replicas]]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(expected, run.Stderr);
    }

    [Fact]
    public void Twin_options_without_a_twin_are_refused()
    {
        var run = _lens.Run("engine", "serve", "--replicas", "2", "--port", "0");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("go with --twin", run.Stderr);
    }
}
