using System.Diagnostics;
using System.Net.Sockets;

namespace Lens.Testing;

/// <summary>
/// Azurite on 127.0.0.1:10002 (tables), for every test project that needs Azure Table storage (this file is linked into each):
/// used when already listening (CI starts it with scripts/azurite.sh), otherwise started through that script here and stopped
/// again at the end. Set LENS_TEST_AZURE_STORAGE to use another storage account.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private const int TablePort = 10002;
    private bool _startedHere;

    public string ConnectionString { get; } = Environment.GetEnvironmentVariable("LENS_TEST_AZURE_STORAGE") ?? "UseDevelopmentStorage=true";

    public async Task InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable("LENS_TEST_AZURE_STORAGE") is not null || await ListeningAsync())
        {
            return;
        }

        var (code, output) = await ScriptAsync("start");
        if (code != 0 || !await ListeningAsync())
        {
            throw new InvalidOperationException($"could not start Azurite with scripts/azurite.sh (exit {code}):\n{output}");
        }

        _startedHere = true;
    }

    public async Task DisposeAsync()
    {
        if (_startedHere)
        {
            await ScriptAsync("stop");
        }
    }

    private static async Task<bool> ListeningAsync()
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await client.ConnectAsync("127.0.0.1", TablePort, timeout.Token);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task<(int Code, string Output)> ScriptAsync(string verb)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "scripts", "azurite.sh")))
        {
            dir = dir.Parent;
        }

        if (dir is null)
        {
            return (-1, "scripts/azurite.sh not found above " + AppContext.BaseDirectory);
        }

        var start = new ProcessStartInfo("bash", [Path.Combine(dir.FullName, "scripts", "azurite.sh"), verb])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = dir.FullName,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: false);
            return (-1, "scripts/azurite.sh did not finish within 3 minutes");
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
