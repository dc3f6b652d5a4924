using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Lens.Cli.Tests;

/// <summary><c>lens serve</c> as a real process, driven by the remote forms of profile, status and predict.</summary>
public sealed class ServiceCliTests : IDisposable
{
    private const string Key = "cli-test-key-0123456789";
    private readonly LensProcess _lens = new();

    public ServiceCliTests() => _lens.Environment["LENS_TEST_KEY"] = Key;

    public void Dispose() => _lens.Dispose();

    [Fact]
    public async Task Serve_then_profile_status_and_predict_remotely()
    {
        int http = FreePort(), silo = FreePort(), gateway = FreePort();
        using var server = _lens.Start("serve", "--tenant", "acme", "--api-key-env", "LENS_TEST_KEY", "--http-port", $"{http}",
            "--silo-port", $"{silo}", "--gateway-port", $"{gateway}");
        try
        {
            var url = $"http://127.0.0.1:{http}";
            await WaitForHealthAsync(url, server);
            _lens.Write("spec.json", """
                { "name": "tiny", "model": "tiny-llama", "prefillBuckets": [16, 32, 64], "decodeBuckets": [16, 32, 64, 128],
                  "backend": { "kind": "reference", "engineProfile": "tiny" } }
                """);
            string[] remote = ["--server", url, "--api-key-env", "LENS_TEST_KEY", "--device", "cpu-0"];

            var profile = _lens.Run(["profile", .. remote, "--spec", "spec.json", "--wait"]);
            Assert.True(profile.ExitCode == 0, profile.Stderr + profile.Stdout);
            Assert.Contains("Completed: 8/8 measured", profile.Stdout);

            var list = _lens.Run(["status", .. remote, "--json"]);
            Assert.Equal(0, list.ExitCode);
            using var deployments = JsonDocument.Parse(list.Stdout);
            var id = deployments.RootElement[0].GetProperty("id").GetString()!;
            Assert.StartsWith("tiny-", id);

            var status = _lens.Run(["status", .. remote, "--deployment", id]);
            Assert.Equal(0, status.ExitCode);
            Assert.Contains("profiling Completed, 8/8", status.Stdout);

            var predict = _lens.Run(["predict", .. remote, "--deployment", id, "--input-len", "20", "--output-len", "50", "--json"]);
            Assert.True(predict.ExitCode == 0, predict.Stderr);
            using var p = JsonDocument.Parse(predict.Stdout);
            Assert.True(p.RootElement.GetProperty("e2eMs").GetDouble() > p.RootElement.GetProperty("ttftMs").GetDouble());

            var outside = _lens.Run(["predict", .. remote, "--deployment", id, "--input-len", "65", "--output-len", "5"]);
            Assert.Equal(1, outside.ExitCode);
            Assert.Contains("input length 65 is above the longest prefill bucket 64", outside.Stderr);

            _lens.Environment["LENS_TEST_KEY"] = "wrong-key-0123456789";
            var denied = _lens.Run(["status", .. remote]);
            Assert.Equal(1, denied.ExitCode);
            Assert.Contains("401", denied.Stderr);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public void Serve_refuses_bad_settings_by_name()
    {
        _lens.Environment["SHORT_KEY"] = "short";
        var r = _lens.Run("serve", "--tenant", "acme", "--api-key-env", "SHORT_KEY", "--http-port", "70000");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Lens:Tenants:acme:ApiKey must be at least 16 characters", r.Stderr);
        Assert.DoesNotContain("short", r.Stderr.Replace("shorter", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_takes_repeated_tenant_pairs()
    {
        _lens.Environment["LENS_SECOND_KEY"] = "second-key-0123456789";
        int http = FreePort(), silo = FreePort(), gateway = FreePort();
        using var server = _lens.Start("serve", "--tenant", "acme", "--api-key-env", "LENS_TEST_KEY", "--tenant", "globex",
            "--api-key-env", "LENS_SECOND_KEY", "--http-port", $"{http}", "--silo-port", $"{silo}", "--gateway-port", $"{gateway}");
        try
        {
            var banner = await server.StandardError.ReadLineAsync();
            Assert.Contains("2 tenant(s)", banner, StringComparison.Ordinal);
            var url = $"http://127.0.0.1:{http}";
            await WaitForHealthAsync(url, server, () => banner ?? "");
            using var client = new HttpClient();
            foreach (var key in new[] { Key, "second-key-0123456789" })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"{url}/v1/devices/cpu-0/deployments");
                request.Headers.Add("X-Api-Key", key);
                using var response = await client.SendAsync(request);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public void Serve_refuses_unpaired_tenants_as_a_usage_error_and_documents_tenant_settings()
    {
        var r = _lens.Run("serve", "--tenant", "acme", "--api-key-env", "LENS_TEST_KEY", "--tenant", "globex");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("got 2 --tenant and 1 --api-key-env", r.Stdout + r.Stderr, StringComparison.Ordinal);

        var help = _lens.Run("serve", "--help");
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("Lens__Tenants__NAME__ApiKey", help.Stdout, StringComparison.Ordinal);
    }

    /// <summary>Waits until the server answers /health; <paramref name="output"/> gives its output when it is read asynchronously.</summary>
    internal static async Task WaitForHealthAsync(string url, Process server, Func<string>? output = null)
    {
        using var http = new HttpClient();
        for (var attempt = 0; attempt < 120; attempt++)
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"lens serve exited: {(output is null ? await server.StandardError.ReadToEndAsync() : output())}");
            }

            try
            {
                if ((await http.GetAsync($"{url}/health")).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            await Task.Delay(500);
        }

        throw new TimeoutException($"lens serve did not answer /health within 60 s{(output is null ? "" : $": {output()}")}");
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
