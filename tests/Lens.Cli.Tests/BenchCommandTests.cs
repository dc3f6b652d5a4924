using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Lens.Cli.Tests;

/// <summary>
/// <c>lens bench</c> as a real process against a real <c>lens serve</c> (embedded storage, loopback) holding a replayed deployment:
/// over HTTP to a list of URLs (the same server twice), and over the Orleans gateway.
/// </summary>
public sealed class BenchCommandTests(BenchCommandTests.ServerFixture server) : IClassFixture<BenchCommandTests.ServerFixture>
{
    [Fact]
    public void Http_over_a_list_of_urls_counts_each_as_a_target()
    {
        using var doc = Bench(server, ["--server", $"{server.Url},{server.Url}", "--api-key-env", "LENS_TEST_KEY"]);
        var r = doc.RootElement;
        Assert.Equal("http", r.GetProperty("transport").GetString());
        Assert.Equal(2, r.GetProperty("targets").GetInt32());
    }

    [Theory]
    [InlineData("binary")]
    [InlineData("json")]
    public void Http_batches_in_either_format(string format)
    {
        using var doc = Bench(server, ["--server", server.Url, "--api-key-env", "LENS_TEST_KEY", "--batch", "50", "--batch-format", format]);
        var r = doc.RootElement;
        Assert.Equal(format, r.GetProperty("batchFormat").GetString());
        Assert.Equal(50, r.GetProperty("batch").GetInt32());
    }

    [Fact]
    public void A_wrong_key_flood_alongside_is_answered_401_then_429_while_valid_calls_all_succeed()
    {
        using var doc = Bench(server, ["--server", server.Url, "--api-key-env", "LENS_TEST_KEY", "--bad-key-rate", "500"]);
        var flood = doc.RootElement.GetProperty("badKey");
        var (sent, unauthorized, throttled) = (flood.GetProperty("sent").GetInt64(), flood.GetProperty("unauthorized").GetInt64(),
            flood.GetProperty("throttled").GetInt64());
        Assert.True(sent > 0, flood.ToString());
        Assert.Equal(sent, unauthorized + throttled); // every wrong key refused, none let through or failing otherwise
        Assert.Equal(0, flood.GetProperty("other").GetInt64());
        // The address may fail 20 times per 1-second window (the default); the flood ran about as long as the timed calls.
        var windows = Math.Ceiling(doc.RootElement.GetProperty("seconds").GetDouble()) + 2;
        Assert.InRange(unauthorized, 1, 20 * windows);
        Assert.Equal(sent - unauthorized, throttled);
    }

    [Theory]
    [InlineData("--bad-key-rate", "0")]
    [InlineData("--bad-key-rate", "200000")]
    public void A_flood_rate_out_of_range_is_a_usage_error(string option, string value)
    {
        using var lens = new LensProcess();
        var r = lens.Run("bench", "--server", "http://127.0.0.1:5190", "--api-key-env", "LENS_TEST_KEY", "--device", "cpu-0", "--deployment", "x",
            option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--bad-key-rate needs --server and a rate in 1..100000", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_batch_format_is_a_usage_error()
    {
        using var lens = new LensProcess();
        var r = lens.Run("bench", "--server", "http://127.0.0.1:5190", "--api-key-env", "LENS_TEST_KEY", "--device", "cpu-0", "--deployment", "x",
            "--batch-format", "xml");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--batch-format 'xml' is not one of binary, json", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void The_warm_up_reaches_every_url_and_names_one_that_fails()
    {
        var dead = $"http://127.0.0.1:{ServiceCliTests.FreePort()}";
        var r = server.Lens.Run("bench", "--server", $"{server.Url},{dead}", "--api-key-env", "LENS_TEST_KEY", "--device", "cpu-0",
            "--deployment", server.Deployment, "--clients", "2", "--requests", "10", "--warmup", "1", "--json");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"warm-up call 2 to {dead} failed", r.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)] // two Orleans clients in one process, both through the one gateway
    public void Orleans_through_the_gateway(int times)
    {
        var gateways = string.Join(',', Enumerable.Repeat($"{server.GatewayPort}", times));
        using var doc = Bench(server, ["--gateway", gateways, "--tenant", "acme"]);
        var r = doc.RootElement;
        Assert.Equal("orleans", r.GetProperty("transport").GetString());
        Assert.Equal(times, r.GetProperty("targets").GetInt32());
    }

    [Theory]
    [InlineData("http://127.0.0.1:5190,htp:/bad-url", "--server 'htp:/bad-url' is not an http(s) URL")]
    [InlineData("http://127.0.0.1:5190,,http://127.0.0.1:5191", "--server '' is not an http(s) URL")]
    [InlineData("http://127.0.0.1:5190,ftp://127.0.0.1:5191", "--server 'ftp://127.0.0.1:5191' is not an http(s) URL")]
    public void A_malformed_url_in_the_list_is_a_usage_error_naming_it(string servers, string message)
    {
        using var lens = new LensProcess();
        lens.Environment["LENS_TEST_KEY"] = Key;
        var r = lens.Run("bench", "--server", servers, "--api-key-env", "LENS_TEST_KEY", "--device", "cpu-0", "--deployment", "x", "--clients", "4");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Fewer_clients_than_targets_and_a_bad_gateway_port_are_usage_errors()
    {
        using var lens = new LensProcess();
        lens.Environment["LENS_TEST_KEY"] = Key;
        var few = lens.Run("bench", "--server", "http://127.0.0.1:5190,http://127.0.0.1:5191,http://127.0.0.1:5192", "--api-key-env",
            "LENS_TEST_KEY", "--device", "cpu-0", "--deployment", "x", "--clients", "2");
        Assert.Equal(2, few.ExitCode);
        Assert.Contains("--clients 2 is fewer than the 3 --server URLs", few.Stderr, StringComparison.Ordinal);

        var fewer = lens.Run("bench", "--gateway", "30000,30001", "--tenant", "acme", "--device", "cpu-0", "--deployment", "x", "--clients", "1");
        Assert.Equal(2, fewer.ExitCode);
        Assert.Contains("--clients 1 is fewer than the 2 --gateway ports", fewer.Stderr, StringComparison.Ordinal);

        var port = lens.Run("bench", "--gateway", "30000,3x", "--tenant", "acme", "--device", "cpu-0", "--deployment", "x");
        Assert.Equal(2, port.ExitCode);
        Assert.Contains("--gateway '3x' is not a port number", port.Stderr, StringComparison.Ordinal);
    }

    private const string Key = "cli-bench-key-0123456789";
    private const int Requests = 200;

    /// <summary>Runs a short bench (2 clients, 200 calls after 20 warm-up calls) and checks what every run must show.</summary>
    private static JsonDocument Bench(ServerFixture server, string[] target)
    {
        var r = server.Lens.Run(["bench", .. target, "--device", "cpu-0", "--deployment", server.Deployment, "--clients", "2",
            "--requests", $"{Requests}", "--warmup", "20", "--max-seconds", "60", "--json"]);
        Assert.True(r.ExitCode == 0, $"lens bench exited {r.ExitCode}: {r.Stderr}{r.Stdout}\nserver: {server.Tail()}");
        var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal(Requests, root.GetProperty("calls").GetInt64());
        Assert.Equal(0, root.GetProperty("failed").GetInt64());
        Assert.True(root.GetProperty("predictionsPerSecond").GetDouble() > 0, r.Stdout);
        Assert.Equal(2, root.GetProperty("clients").GetInt32());
        return doc;
    }

    /// <summary>One <c>lens serve</c> for the class, with a deployment replaying a model fitted from synthetic measurements.</summary>
    public sealed class ServerFixture : IAsyncLifetime
    {
        private readonly StringBuilder _log = new();
        private Process? _server;

        internal LensProcess Lens { get; } = new();

        public string Url { get; private set; } = "";

        public int GatewayPort { get; private set; }

        public string Deployment { get; private set; } = "";

        /// <summary>The server's last output lines, for failure messages.</summary>
        public string Tail()
        {
            lock (_log)
            {
                var text = _log.ToString();
                return text.Length <= 4000 ? text : text[^4000..];
            }
        }

        public async Task InitializeAsync()
        {
            Lens.Environment["LENS_TEST_KEY"] = Key;
            int http = ServiceCliTests.FreePort(), silo = ServiceCliTests.FreePort();
            GatewayPort = ServiceCliTests.FreePort();
            Url = $"http://127.0.0.1:{http}";
            _server = Lens.Start("serve", "--tenant", "acme", "--api-key-env", "LENS_TEST_KEY", "--http-port", $"{http}",
                "--silo-port", $"{silo}", "--gateway-port", $"{GatewayPort}");
            // Drained as it comes: a full pipe would stall the server.
            _server.OutputDataReceived += (_, e) => Append(e.Data);
            _server.ErrorDataReceived += (_, e) => Append(e.Data);
            _server.BeginOutputReadLine();
            _server.BeginErrorReadLine();
            await ServiceCliTests.WaitForHealthAsync(Url, _server, Tail);

            // A fitted model to replay: the plan's requests timed by a linear cost, as scripts/bench.sh does.
            string[] buckets = ["--prefill-buckets", "16,32,64", "--decode-buckets", "16,32,64,128"];
            Check(Lens.Run(["plan", .. buckets, "--out", "plan.csv"]));
            var rows = Lens.Read("plan.csv").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Skip(1)
                .Select(line => line.Split(','))
                .Select(f => (I: int.Parse(f[1], CultureInfo.InvariantCulture), O: int.Parse(f[2], CultureInfo.InvariantCulture)))
                .Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.I},{p.O},{20 + (p.I * 0.05) + ((p.O - 1) * (1 + (p.I / 4000.0)))}"));
            Lens.Write("m.csv", "input_len,output_len,e2e_ms\n" + string.Join('\n', rows) + "\n");
            Check(Lens.Run(["fit", .. buckets, "--measurements", "m.csv", "--out", "model.json"]));
            Lens.Write("spec.json", JsonSerializer.Serialize(new
            {
                name = "bench",
                model = "replayed",
                prefillBuckets = new[] { 16, 32, 64 },
                decodeBuckets = new[] { 16, 32, 64, 128 },
                backend = new { kind = "replay", modelJson = Lens.Read("model.json") },
            }));

            string[] remote = ["--server", Url, "--api-key-env", "LENS_TEST_KEY", "--device", "cpu-0"];
            Check(Lens.Run(["profile", .. remote, "--spec", "spec.json", "--wait"]));
            var list = Lens.Run(["status", .. remote, "--json"]);
            Check(list);
            using var deployments = JsonDocument.Parse(list.Stdout);
            Deployment = deployments.RootElement[0].GetProperty("id").GetString()!;
        }

        public async Task DisposeAsync()
        {
            if (_server is not null)
            {
                _server.Kill(entireProcessTree: true);
                await _server.WaitForExitAsync();
                _server.Dispose();
            }

            Lens.Dispose();
        }

        private void Check(LensProcess.Result r)
        {
            if (r.ExitCode != 0)
            {
                throw new InvalidOperationException($"lens exited {r.ExitCode}: {r.Stderr}{r.Stdout}\nserver: {Tail()}");
            }
        }

        private void Append(string? line)
        {
            if (line is not null)
            {
                lock (_log)
                {
                    _log.AppendLine(line);
                }
            }
        }
    }
}
