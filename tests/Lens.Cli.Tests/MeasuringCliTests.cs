using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Lens.Core;
using Lens.Engine;

namespace Lens.Cli.Tests;

/// <summary>The commands that measure: against the real reference engine on loopback.</summary>
public sealed class MeasuringCliTests : IDisposable
{
    private static readonly string[] TinyBuckets = ["--prefill-buckets", "16,32,64", "--decode-buckets", "16,32,64,128"];
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    [Fact]
    public async Task Profile_measures_a_live_server_resumes_and_fits()
    {
        using var engine = ReferenceEngine.Create(EngineProfiles.Load("tiny"));
        await using var server = await EngineServer.StartAsync(engine, 0);
        string[] args = ["profile", "--endpoint", server.BaseAddress.ToString(), "--model", "tiny", .. TinyBuckets, "--repeats", "2",
            "--token-id-max", "256", "--out", "m.csv", "--fit", "model.json"];

        var first = _lens.Run(args);
        Assert.True(first.ExitCode == 0, first.Stderr + first.Stdout);
        var rows = LensCsv.ReadMeasurements(new StringReader(_lens.Read("m.csv")), "m.csv").Rows;
        Assert.Equal(16, rows.Count); // 4 decode buckets x 2 requests x 2 repeats
        Assert.All(rows, m => Assert.True(m.TtftMs <= m.E2eMs));
        var model = ModelJson.Deserialize(_lens.Read("model.json"), "model.json");
        Assert.True(model.IsComplete);

        var again = _lens.Run(args);
        Assert.Equal(0, again.ExitCode);
        Assert.Contains("0 measured, 16 already in the file", again.Stdout);
        Assert.Equal(16, LensCsv.ReadMeasurements(new StringReader(_lens.Read("m.csv")), "m.csv").Rows.Count);
    }

    [Fact]
    public void Profile_of_a_server_that_is_down_fails_clearly()
    {
        var port = FreePort();
        var r = _lens.Run(["profile", "--endpoint", $"http://127.0.0.1:{port}/v1", "--model", "x", .. TinyBuckets, "--retries", "1",
            "--out", "m.csv"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"127.0.0.1:{port}", r.Stderr);
        Assert.Contains("gave up after 2 attempts", r.Stderr);
    }

    [Fact]
    public void Demo_runs_the_whole_loop_on_the_tiny_engine()
    {
        var r = _lens.Run("demo", "--engine", "tiny", "--heldout", "12", "--repeats", "1", "--sweep", "3", "--out-dir", "out", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var results = doc.RootElement.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(["LENS", "smooth regression (1, I, O, I*O)", "per-token linear (TTFT ~ I, constant TPOT)", "noise floor (second measurement)"],
            results.Select(e => e.GetProperty("predictor").GetString()));
        Assert.All(results, e => Assert.Equal(12, e.GetProperty("e2e").GetProperty("count").GetInt32()));
        foreach (var file in new[] { "profile.csv", "heldout.csv", "heldout-twin.csv", "sweep.csv", "model.json", "demo.png" })
        {
            Assert.True(new FileInfo(_lens.PathOf(Path.Combine("out", file))).Length > 0, file);
        }

        var png = File.ReadAllBytes(_lens.PathOf("out/demo.png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png.Take(4));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
