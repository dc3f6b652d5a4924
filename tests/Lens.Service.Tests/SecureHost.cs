using System.Collections.Concurrent;
using Lens.Silo;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace Lens.Service.Tests;

/// <summary>Starts a real LENS server on loopback with the tests' two tenants, and records what it logs.</summary>
internal static class SecureHost
{
    public static LensServerOptions Options(Action<LensServerOptions>? change = null)
    {
        var options = new LensServerOptions
        {
            SiloPort = TestModels.FreePort(),
            GatewayPort = TestModels.FreePort(),
            HttpPort = 0,
            ServiceId = "lens-sec-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["acme"] = HttpHostFixture.AcmeKey, ["globex"] = HttpHostFixture.GlobexKey },
        };
        change?.Invoke(options);
        return options;
    }

    public static Task<LensServer> StartAsync(LensServerOptions options, LogSink? logs = null, Action<WebApplicationBuilder>? configure = null) =>
        LensHost.StartAsync(options, b =>
        {
            b.Logging.SetMinimumLevel(LogLevel.Information);
            b.Logging.AddFilter("Orleans", LogLevel.Warning).AddFilter("Microsoft", LogLevel.Warning).QuietExpected();
            if (logs is not null)
            {
                b.Logging.AddProvider(logs);
            }

            configure?.Invoke(b);
        });

    public static HttpRequestMessage Request(HttpMethod method, string path, string? key = HttpHostFixture.AcmeKey)
    {
        var request = new HttpRequestMessage(method, path);
        if (key is not null)
        {
            request.Headers.Add("X-Api-Key", key);
        }

        return request;
    }
}

/// <summary>One log entry: its category, level, text and whether it carried an exception (a stack trace).</summary>
internal sealed record LogEntry(string Category, LogLevel Level, string Message, bool HasException);

/// <summary>A logger provider that keeps every entry (bounded by the test's own requests).</summary>
internal sealed class LogSink : ILoggerProvider
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();

    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _entries);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<LogEntry> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            entries.Enqueue(new LogEntry(category, logLevel, formatter(state, exception), exception is not null));
    }
}
