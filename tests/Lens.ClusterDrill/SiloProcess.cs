using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Lens.ClusterDrill;

/// <summary>One real <c>lens serve</c> process (the built lens.dll) on loopback ports, its output in a log file.</summary>
public sealed class SiloProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly Lock _gate = new();

    private SiloProcess(int index, Process process, StreamWriter log, int httpPort, int siloPort, int gatewayPort, string logPath)
    {
        Index = index;
        _process = process;
        _log = log;
        HttpPort = httpPort;
        SiloPort = siloPort;
        GatewayPort = gatewayPort;
        LogPath = logPath;
    }

    public int Index { get; }

    public int HttpPort { get; }

    public int SiloPort { get; }

    public int GatewayPort { get; }

    public string LogPath { get; }

    public int Pid => _process.Id;

    public Uri HttpAddress => new($"http://127.0.0.1:{HttpPort}/");

    public bool Killed { get; private set; }

    public bool HasExited => _process.HasExited;

    /// <summary>Starts silo <paramref name="index"/>; <paramref name="environment"/> carries the cluster's Lens__* settings and secrets.</summary>
    public static SiloProcess Start(int index, string lensDll, string logDirectory, IReadOnlyDictionary<string, string> environment,
        string keyVariable, string storageVariable)
    {
        var (http, silo, gateway) = (FreePort(), FreePort(), FreePort());
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = logDirectory,
        };
        foreach (var arg in new[]
                 {
                     lensDll, "serve", "--storage", "azure-table", "--connection-string-env", storageVariable,
                     "--http-port", Text(http), "--silo-port", Text(silo), "--gateway-port", Text(gateway),
                     "--tenant", "acme", "--api-key-env", keyVariable,
                 })
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var logPath = Path.Combine(logDirectory, $"silo{index}.log");
        var log = new StreamWriter(logPath, append: false) { AutoFlush = true };
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
        var silo0 = new SiloProcess(index, process, log, http, silo, gateway, logPath);
        process.OutputDataReceived += (_, e) => silo0.Write(e.Data);
        process.ErrorDataReceived += (_, e) => silo0.Write(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return silo0;
    }

    /// <summary>Waits until <c>/health</c> answers; fails when the process exits first or <paramref name="timeout"/> passes.</summary>
    public async Task WaitHealthyAsync(HttpClient http, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"silo {Index} exited with code {_process.ExitCode} at start; see {LogPath}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri(HttpAddress, "health"), cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // slow start
            }

            await Task.Delay(250, cancellationToken);
        }

        throw new TimeoutException($"silo {Index} did not answer /health within {timeout.TotalSeconds:0} s; see {LogPath}");
    }

    /// <summary>SIGKILL: the process dies at once, without leaving the cluster (a crashed machine, an OOM kill).</summary>
    public void Kill()
    {
        Killed = true;
        Write("---- drill: SIGKILL ----");
        _process.Kill(entireProcessTree: false);
    }

    /// <summary>SIGTERM and a graceful stop; SIGKILL when it takes longer than <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }

        try
        {
            using var term = Process.Start(new ProcessStartInfo("kill", ["-TERM", Text(_process.Id)]) { UseShellExecute = false });
            if (term is not null)
            {
                await term.WaitForExitAsync();
            }

            using var wait = new CancellationTokenSource(grace);
            await _process.WaitForExitAsync(wait.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(20));
        _process.Dispose();
        lock (_gate)
        {
            _log.Dispose();
        }
    }

    private void Write(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            try
            {
                _log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // output after the log closed
            }
        }
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
