using System.Net;
using System.Net.Sockets;
using System.Text;
using Lens.Cli.Commands;
using Spectre.Console.Cli;

namespace Lens.Cli.Tests;

/// <summary><c>lens health</c> (the container image's HEALTHCHECK): exit 0 on a 2xx answer, 1 otherwise, 2-style refusal of bad options.</summary>
public sealed class HealthCommandTests
{
    [Theory]
    [InlineData(200, 0)]
    [InlineData(204, 0)]
    [InlineData(503, 1)]
    [InlineData(404, 1)]
    public async Task The_exit_code_follows_the_answer(int status, int exitCode)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = AnswerOnceAsync(listener, status);
        Assert.Equal(exitCode, await RunAsync("--url", $"http://127.0.0.1:{port}/health"));
        await server;
    }

    [Fact]
    public async Task Nothing_listening_is_unhealthy()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        Assert.Equal(1, await RunAsync("--url", $"http://127.0.0.1:{port}/health", "--timeout", "2"));
    }

    [Theory]
    [InlineData("--url", "not-a-url")]
    [InlineData("--url", "ftp://127.0.0.1/health")]
    [InlineData("--timeout", "0")]
    public async Task Bad_options_are_refused(string option, string value) =>
        Assert.NotEqual(0, await RunAsync(option, value));

    private static Task<int> RunAsync(params string[] args) => new CommandApp<HealthCommand>().RunAsync(args);

    /// <summary>Answers one HTTP request with <paramref name="status"/> and closes.</summary>
    private static async Task AnswerOnceAsync(TcpListener listener, int status)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var client = await listener.AcceptTcpClientAsync(timeout.Token);
        var stream = client.GetStream();
        var buffer = new byte[4096];
        var request = new StringBuilder();
        while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer, timeout.Token);
            if (n == 0)
            {
                return;
            }

            request.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        var body = status == 204 ? "" : "{\"status\":\"x\"}";
        var response = $"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(response), timeout.Token);
    }
}
