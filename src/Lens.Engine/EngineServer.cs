using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lens.Engine;

/// <summary>
/// An OpenAI-compatible HTTP server for a <see cref="ReferenceEngine"/> (bound to 127.0.0.1 only) or a <see cref="DigitalTwin"/>
/// (127.0.0.1 unless told otherwise), on Kestrel; the handlers are <see cref="CompletionsApi"/>'s:
/// <list type="bullet">
/// <item><c>GET /v1/models</c>: the profile name is the one model id, with <c>max_model_len</c> and <c>max_num_seqs</c>;</item>
/// <item><c>POST /v1/completions</c>: <c>model</c>, <c>prompt</c> (a string, tokenized by <see cref="EngineTokenizer"/>: one token per
/// whitespace-separated word; or a list of token ids), <c>max_tokens</c> (default 16; exactly that many tokens are generated: the
/// engine never stops early), <c>min_tokens</c>, <c>ignore_eos</c> and <c>temperature</c> (checked, then ignored: decoding is
/// greedy), <c>stream</c>, <c>stream_options.include_usage</c>. Streamed answers are server-sent events, one chunk per token,
/// flushed as soon as the token exists, then a usage chunk when asked, then <c>data: [DONE]</c>;</item>
/// <item><c>GET /health</c>.</item>
/// </list>
/// Bad requests get OpenAI-style 400s: <c>{"error":{"message","type":"invalid_request_error","param","code":null}}</c>.
/// Every request goes straight to the engine, concurrently: its scheduler batches up to <c>max_num_seqs</c> of them (one at a
/// time with batch buckets <c>[1]</c>) and the rest wait first come first served; each stream gets its tokens as they exist.
/// </summary>
public sealed class EngineServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _disposed;

    private EngineServer(WebApplication app, ReferenceEngine? engine, DigitalTwin? twin, Uri baseAddress)
    {
        _app = app;
        Engine = engine;
        Twin = twin;
        BaseAddress = baseAddress;
    }

    /// <summary>The OpenAI base address, ending in <c>/v1/</c>, e.g. <c>http://127.0.0.1:8000/v1/</c>.</summary>
    public Uri BaseAddress { get; }

    /// <summary>The server's root, e.g. <c>http://127.0.0.1:8000/</c> (where <c>/health</c> is).</summary>
    public Uri RootAddress => new(BaseAddress, "../");

    /// <summary>The reference engine served, or null when the server serves a <see cref="Twin"/>.</summary>
    public ReferenceEngine? Engine { get; }

    /// <summary>The digital twin served, or null when the server serves an <see cref="Engine"/>.</summary>
    public DigitalTwin? Twin { get; }

    /// <summary>Starts serving <paramref name="engine"/> on 127.0.0.1:<paramref name="port"/> (0 picks a free port).</summary>
    public static async Task<EngineServer> StartAsync(ReferenceEngine engine, int port = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        var (app, address) = await StartAppAsync(engine, IPAddress.Loopback, port, cancellationToken);
        return new EngineServer(app, engine, null, address);
    }

    /// <summary>
    /// Starts serving the digital twin <paramref name="twin"/> with the same routes and streaming format, on
    /// <paramref name="host"/> (default 127.0.0.1) and <paramref name="port"/> (0 picks a free port). The twin is not disposed with
    /// the server.
    /// </summary>
    public static async Task<EngineServer> StartAsync(DigitalTwin twin, int port = 0, IPAddress? host = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(twin);
        var (app, address) = await StartAppAsync(twin, host ?? IPAddress.Loopback, port, cancellationToken);
        return new EngineServer(app, null, twin, address);
    }

    private static async Task<(WebApplication App, Uri BaseAddress)> StartAppAsync(ICompletionModel model, IPAddress host, int port,
        CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ApplicationName = typeof(EngineServer).Assembly.GetName().Name,
        });
        // Nothing from the environment, command line or an appsettings.json in the working folder may add endpoints or logging:
        // the server binds the one address it is given, and stays quiet.
        builder.Configuration.Sources.Clear();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(host, port);
        });

        var app = builder.Build();
        var api = new CompletionsApi(model);
        app.MapGet("/health", (RequestDelegate)CompletionsApi.HealthAsync);
        app.MapGet("/v1/models", (RequestDelegate)api.ModelsAsync);
        app.MapPost("/v1/completions", (RequestDelegate)api.CompletionsAsync);
        app.MapFallback((RequestDelegate)CompletionsApi.NotFoundAsync);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("Kestrel reported no listening address");
        var bound = new Uri(address);
        var shown = host.Equals(IPAddress.Any) || host.Equals(IPAddress.IPv6Any) ? IPAddress.Loopback : host;
        var hostText = shown.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{shown}]" : shown.ToString();
        return (app, new Uri($"http://{hostText}:{bound.Port}/v1/"));
    }

    /// <summary>Stops listening (in-flight requests are given a few seconds) and releases the server; the engine is not disposed.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            await _app.StopAsync(cts.Token);
        }

        await _app.DisposeAsync();
    }
}
