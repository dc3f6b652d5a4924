using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Lens.Cli.Tests;

/// <summary>
/// Issue 17, item 3, through the CLI as a process: <c>lens profile --retries N</c> is the one retry budget, so a request against a
/// server that always fails transiently costs exactly N + 1 HTTP requests (the backend does not retry on top).
/// </summary>
public sealed class ProfileRetryCliTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    [Fact]
    public async Task Each_planned_request_against_a_server_that_always_answers_503_costs_retries_plus_one_requests()
    {
        await using var server = UnavailableServer.Start();

        var r = _lens.Run(["profile", "--endpoint", $"http://127.0.0.1:{server.Port}/v1", "--model", "m", "--prefill-buckets", "16",
            "--decode-buckets", "16,32", "--retries", "1", "--warmup", "0", "--out", "m.csv"]);

        Assert.Equal(1, r.ExitCode);
        Assert.Contains("stopped after 3 failed requests in a row", r.Stderr, StringComparison.Ordinal); // the CLI's stop rule
        Assert.Contains("gave up after 2 attempts", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(3 * 2, server.Completions);
        Assert.Equal(0, server.Others);
    }

    /// <summary>
    /// A loopback HTTP/1.1 server that answers every request 503 with an OpenAI-style error and closes the connection; it counts
    /// completions requests (and anything else) as they arrive, whole.
    /// </summary>
    private sealed class UnavailableServer : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _accepting;
        private int _completions;
        private int _others;

        private UnavailableServer(TcpListener listener)
        {
            _listener = listener;
            _accepting = AcceptAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public int Completions => Volatile.Read(ref _completions);

        public int Others => Volatile.Read(ref _others);

        public static UnavailableServer Start()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return new UnavailableServer(listener);
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            try
            {
                await _accepting;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // stopped
            }

            _stop.Dispose();
        }

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                _ = Task.Run(() => AnswerAsync(client));
            }
        }

        private async Task AnswerAsync(TcpClient client)
        {
            using (client)
            {
                var stream = client.GetStream();
                var head = await ReadHeadAsync(stream);
                var lines = head.Split("\r\n");
                var length = lines.Select(l => l.Split(':', 2))
                    .Where(p => p.Length == 2 && p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                    .Select(p => int.Parse(p[1].Trim(), System.Globalization.CultureInfo.InvariantCulture))
                    .FirstOrDefault();
                await stream.ReadExactlyAsync(new byte[length]);
                Interlocked.Increment(ref lines[0].StartsWith("POST /v1/completions ", StringComparison.Ordinal) ? ref _completions : ref _others);
                var body = """{"error":{"message":"engine is restarting","type":"server_error","code":503}}""";
                var answer = $"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n" +
                             $"Connection: close\r\n\r\n{body}";
                await stream.WriteAsync(Encoding.UTF8.GetBytes(answer));
            }
        }

        /// <summary>The request line and headers, up to the blank line (one byte at a time: the body stays in the stream).</summary>
        private static async Task<string> ReadHeadAsync(NetworkStream stream)
        {
            var head = new List<byte>();
            var one = new byte[1];
            while (head.Count < 64 * 1024 && await stream.ReadAsync(one) == 1)
            {
                head.Add(one[0]);
                if (head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n')
                {
                    break;
                }
            }

            return Encoding.ASCII.GetString([.. head]);
        }
    }
}
