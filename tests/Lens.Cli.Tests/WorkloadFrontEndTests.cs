using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Lens.Core;

namespace Lens.Cli.Tests;

/// <summary>One workload, one trace: <c>lens simulate --rate</c> and the service's simulate route generate the same requests.</summary>
public sealed class WorkloadFrontEndTests : IDisposable
{
    private const string Key = "cli-test-key-0123456789";
    private readonly LensProcess _lens = new();

    public WorkloadFrontEndTests() => _lens.Environment["LENS_TEST_KEY"] = Key;

    public void Dispose() => _lens.Dispose();

    [Fact]
    public async Task The_cli_and_the_service_serve_the_same_generated_trace()
    {
        // P = 64, 128; D = 64, 128, 256; B = 1, 2, 4; profiled by a replay of this model, then the service's fitted model is simulated by both.
        var buckets = new BucketSet([64, 128], [64, 128, 256], DecodeConvention.AfterAppend, [1, 2, 4]);
        var truth = new DeploymentModel(buckets, [.. buckets.Prefill.Select(p => new PrefillValues(p, 5 + (p / 16.0), 0, double.NaN, 0, double.NaN))],
            [.. buckets.Batch.SelectMany(b => buckets.Decode.Select(d => new DecodeValues(d, b + (d / 64.0), 0, b)))], RepeatStatistic.Min, 0);
        _lens.Write("spec.json", JsonSerializer.Serialize(new
        {
            name = "served", model = "tiny", prefillBuckets = buckets.Prefill, decodeBuckets = buckets.Decode, batchBuckets = buckets.Batch,
            backend = new { kind = "replay", modelJson = ModelJson.Serialize(truth) },
        }));
        int http = ServiceCliTests.FreePort(), silo = ServiceCliTests.FreePort(), gateway = ServiceCliTests.FreePort();
        using var server = _lens.Start("serve", "--tenant", "acme", "--api-key-env", "LENS_TEST_KEY", "--http-port", $"{http}",
            "--silo-port", $"{silo}", "--gateway-port", $"{gateway}");
        try
        {
            var url = $"http://127.0.0.1:{http}";
            await ServiceCliTests.WaitForHealthAsync(url, server);
            string[] remote = ["--server", url, "--api-key-env", "LENS_TEST_KEY", "--device", "cpu-0"];
            var profile = _lens.Run(["profile", .. remote, "--spec", "spec.json", "--wait"]);
            Assert.True(profile.ExitCode == 0, profile.Stderr + profile.Stdout);
            using var list = JsonDocument.Parse(_lens.Run(["status", .. remote, "--json"]).Stdout);
            var id = list.RootElement[0].GetProperty("id").GetString()!;

            using var client = new HttpClient { BaseAddress = new Uri($"{url}/v1/devices/cpu-0/deployments/{id}/") };
            client.DefaultRequestHeaders.Add("X-Api-Key", Key);
            _lens.Write("served.json", await client.GetStringAsync("model"));

            // Lengths default to uniform over the buckets in both: the path where the CLI's old generator differed.
            var response = await client.PostAsJsonAsync("simulate", new
            {
                workload = new { requestsPerSecond = 20, count = 300, seed = 7 },
                maxNumSeqs = 2,
                sloTtftMs = 200,
                sloTpotMs = 10,
                includeRequests = true,
            });
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            using var report = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var ttft = report.RootElement.GetProperty("ttftMs").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            var e2e = report.RootElement.GetProperty("e2eMs").EnumerateArray().Select(e => e.GetDouble()).ToArray();

            var cli = _lens.Run("simulate", "--model", "served.json", "--rate", "20", "--count", "300", "--seed", "7", "--max-num-seqs", "2",
                "--slo-ttft", "200", "--slo-tpot", "10", "--out", "pred.csv", "--json");
            Assert.True(cli.ExitCode == 0, cli.Stderr);
            var rows = _lens.Read("pred.csv").Trim().Split('\n').Skip(1).Select(l => l.Split(',')).ToArray();
            Assert.Equal(300, rows.Length);
            Assert.Equal(ttft.Length, rows.Length);
            for (var n = 0; n < rows.Length; n++)
            {
                Assert.Equal(ttft[n], double.Parse(rows[n][3], CultureInfo.InvariantCulture), 1e-4); // the file has 4 decimals
                Assert.Equal(e2e[n], double.Parse(rows[n][4], CultureInfo.InvariantCulture), 1e-4);
            }

            using var summary = JsonDocument.Parse(cli.Stdout);
            var result = summary.RootElement[0].GetProperty("result");
            Assert.Equal(report.RootElement.GetProperty("sloAttainment").GetDouble(), result.GetProperty("sloAttainment").GetDouble(), 12);
            Assert.Equal(report.RootElement.GetProperty("e2e").GetProperty("p90").GetDouble(), result.GetProperty("e2e").GetProperty("p90").GetDouble(), 9);
            Assert.Equal(report.RootElement.GetProperty("decodeSteps").GetInt64(), result.GetProperty("decodeSteps").GetInt64());
            Assert.Contains(rows, r => int.Parse(r[1], CultureInfo.InvariantCulture) + int.Parse(r[2], CultureInfo.InvariantCulture) == 256);

            // And both refuse the same out-of-range field by their own name for it.
            var badHttp = await client.PostAsJsonAsync("simulate", new { workload = new { requestsPerSecond = 20, count = 10 }, replicas = 10_001 });
            Assert.Equal(400, (int)badHttp.StatusCode);
            Assert.Contains("replicas must be in 1..10000; got 10001", await badHttp.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            var badCli = _lens.Run("simulate", "--model", "served.json", "--rate", "20", "--replicas", "10001");
            Assert.Equal(2, badCli.ExitCode);
            Assert.Contains("--replicas must be in 1..10000; got 10001", badCli.Stdout + badCli.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }
}
