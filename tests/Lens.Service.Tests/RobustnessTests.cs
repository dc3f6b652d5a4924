using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Lens.Abstractions;
using Lens.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lens.Service.Tests;

/// <summary>Issue 11, findings 4 and 5: bad and broken bodies, failover answers, client retries, failed-authentication budget.</summary>
public sealed class RobustnessTests
{
    [Fact]
    public async Task Oversized_and_aborted_bodies_are_problems_logged_once_without_a_stack_trace()
    {
        var logs = new LogSink();
        await using var server = await SecureHost.StartAsync(SecureHost.Options(), logs);
        var path = "/v1/devices/npu/deployments/x-0123456789/predict/batch";

        var (status, body) = await RawAsync(server.HttpAddress, path, contentLength: 40_000_000, send: 64 * 1024, close: false);
        Assert.Equal(413, status);
        Assert.Contains("application/problem+json", body, StringComparison.Ordinal);

        await RawAsync(server.HttpAddress, path, contentLength: 100_000, send: 1000, close: true);
        await TestModels.Until(() => Task.FromResult(logs.Entries.Count(e => e.Message.Contains(path, StringComparison.Ordinal)) >= 2),
            "both refused bodies to be logged");

        var lines = logs.Entries.Where(e => e.Message.Contains(path, StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, lines.Length);
        Assert.Contains(lines, e => e.Message.Contains("413", StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Entries, e => e.HasException || e.Message.Contains("   at ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Cluster_faults_during_failover_are_503_with_retry_after()
    {
        var logs = new LogSink();
        await using var server = await SecureHost.StartAsync(SecureHost.Options(), logs,
            b => b.Services.AddSingleton<IIncomingGrainCallFilter, FailoverFilter>());
        using var http = new HttpClient { BaseAddress = server.HttpAddress };
        foreach (var device in new[] { "failover-silo", "failover-timeout" })
        {
            using var response = await http.SendAsync(SecureHost.Request(HttpMethod.Get, $"v1/devices/{device}/deployments"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        using var healthy = await http.SendAsync(SecureHost.Request(HttpMethod.Get, "v1/devices/npu/deployments"));
        Assert.Equal(HttpStatusCode.OK, healthy.StatusCode);
        Assert.DoesNotContain(logs.Entries, e => e.HasException);
    }

    [Fact]
    public async Task The_client_retries_reads_and_predictions_through_503_but_sends_creates_once()
    {
        var calls = new Dictionary<string, int>();
        await using var app = await StartFakeAsync(async ctx =>
        {
            var key = $"{ctx.Request.Method} {ctx.Request.Path}";
            int n;
            lock (calls)
            {
                n = calls[key] = calls.GetValueOrDefault(key) + 1;
            }

            if (n <= 2)
            {
                ctx.Response.StatusCode = 503;
                ctx.Response.Headers.RetryAfter = "0";
                await ctx.Response.WriteAsJsonAsync(new { title = "Service unavailable" });
                return;
            }

            await (ctx.Request.Path.Value!.EndsWith("/predict", StringComparison.Ordinal)
                ? ctx.Response.WriteAsJsonAsync(new PredictionResult(20, 50, 100, 10, 1.8, 90, 110, 3), LensJson.Options)
                : ctx.Response.WriteAsJsonAsync(Array.Empty<DeploymentInfo>(), LensJson.Options));
        });
        using var http = new HttpClient { BaseAddress = app.Address };
        var lens = new LensHttpClient(http, "tenant-key-0123456789");

        var p = await lens.PredictAsync("npu", "d-1", 20, 50);
        Assert.Equal(100, p.E2eMs);
        Assert.Empty(await lens.ListDeploymentsAsync("npu"));
        var create = await Assert.ThrowsAsync<LensApiException>(() => lens.CreateDeploymentAsync("npu", TestModels.Spec("x")));
        Assert.Equal(503, create.Status);
        lock (calls)
        {
            Assert.Equal(3, calls["POST /v1/devices/npu/deployments/d-1/predict"]);
            Assert.Equal(3, calls["GET /v1/devices/npu/deployments"]);
            Assert.Equal(1, calls["POST /v1/devices/npu/deployments"]);
        }
    }

    [Fact]
    public async Task After_the_failure_budget_bad_keys_get_429_and_a_valid_key_still_gets_200()
    {
        var logs = new LogSink();
        await using var server = await SecureHost.StartAsync(SecureHost.Options(o =>
        {
            o.AuthFailureLimit = 5;
            o.AuthFailureWindow = TimeSpan.FromMinutes(5);
        }), logs);
        using var http = new HttpClient { BaseAddress = server.HttpAddress };
        long counted = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) =>
        {
            if (i.Name == "lens.auth.failures")
            {
                l.EnableMeasurementEvents(i);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref counted, value));
        listener.Start();

        for (var i = 0; i < 5; i++)
        {
            using var bad = await http.SendAsync(SecureHost.Request(HttpMethod.Get, "v1/devices/npu/deployments", $"wrong-key-{i:D16}"));
            Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        }

        for (var i = 0; i < 20; i++)
        {
            using var throttled = await http.SendAsync(SecureHost.Request(HttpMethod.Get, "v1/devices/npu/deployments", i % 2 == 0 ? "wrong" : null));
            Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
            Assert.NotNull(throttled.Headers.RetryAfter?.Delta);
            using var valid = await http.SendAsync(SecureHost.Request(HttpMethod.Get, "v1/devices/npu/deployments"));
            Assert.Equal(HttpStatusCode.OK, valid.StatusCode);
        }

        Assert.Equal(25, Interlocked.Read(ref counted));
        var sampled = logs.Entries.Count(e => e.Message.StartsWith("Failed authentication", StringComparison.Ordinal));
        Assert.InRange(sampled, 1, 5); // a sample, not one line per failure
    }

    /// <summary>Sends headers announcing <paramref name="contentLength"/> bytes, then <paramref name="send"/> bytes; closes or reads the answer.</summary>
    private static async Task<(int Status, string Head)> RawAsync(Uri server, string path, long contentLength, int send, bool close)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.Host, server.Port);
        var stream = client.GetStream();
        var head = $"POST {path} HTTP/1.1\r\nHost: {server.Host}\r\nX-Api-Key: {HttpHostFixture.AcmeKey}\r\n" +
                   $"Content-Type: application/json\r\nContent-Length: {contentLength}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(Encoding.ASCII.GetBytes("{\"inputLengths\":[" + new string('1', send - 17)));
        await stream.FlushAsync();
        if (close)
        {
            client.Client.Shutdown(SocketShutdown.Both);
            return (0, "");
        }

        var buffer = new byte[16 * 1024];
        var text = new StringBuilder();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!text.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer, timeout.Token);
            if (n == 0)
            {
                break;
            }

            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        var response = text.ToString();
        return (int.Parse(response.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture), response);
    }

    private static async Task<FakeApp> StartFakeAsync(RequestDelegate handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(handler);
        await app.StartAsync();
        return new FakeApp(app, new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()));
    }

    private sealed record FakeApp(WebApplication App, Uri Address) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => App.DisposeAsync();
    }

    /// <summary>Makes the device grains of devices named failover-* fail as during a silo failover.</summary>
    private sealed class FailoverFilter : IIncomingGrainCallFilter
    {
        public Task Invoke(IIncomingGrainCallContext context)
        {
            var key = context.TargetId.Key.ToString();
            if (key.EndsWith("|failover-silo", StringComparison.Ordinal))
            {
                throw new SiloUnavailableException("the silo hosting this grain is gone");
            }

            if (key.EndsWith("|failover-timeout", StringComparison.Ordinal))
            {
                throw new TimeoutException("response did not arrive on time");
            }

            return context.Invoke();
        }
    }
}
