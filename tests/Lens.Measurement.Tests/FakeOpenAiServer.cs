using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lens.Measurement.Tests;

/// <summary>What the fake server read from one completions request.</summary>
/// <param name="Number">1-based count of completions requests so far, this one included.</param>
/// <param name="PromptTokens">Token ids in the prompt list, or words in a text prompt.</param>
/// <param name="ArrivedAt">When the server began reading it (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>; one process, one clock).</param>
public sealed record CompletionCall(int Number, JsonElement Body, int PromptTokens, int MaxTokens, string? Authorization, long ArrivedAt = 0);

/// <summary>
/// A real Kestrel server on a loopback port speaking just enough of the OpenAI completions API to test the profiler against
/// behaviours a good engine never shows: wrong usage, errors, hangs, dropped streams. By default it answers correctly.
/// </summary>
public sealed class FakeOpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<CompletionCall> _calls = new();
    private int _completions;
    private int _modelCalls;
    private int _inFlight;
    private int _maxInFlight;

    private FakeOpenAiServer(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
    }

    /// <summary>http://127.0.0.1:PORT/v1/</summary>
    public Uri BaseAddress { get; }

    public int CompletionRequests => Volatile.Read(ref _completions);

    public int ModelRequests => Volatile.Read(ref _modelCalls);

    public IReadOnlyList<CompletionCall> Calls => [.. _calls];

    /// <summary>The most completions requests the server was answering at one time.</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    /// <param name="completions">Answers a completions request; null streams a correct answer.</param>
    /// <param name="models">Ids listed by <c>GET /v1/models</c>.</param>
    public static async Task<FakeOpenAiServer> StartAsync(Func<HttpContext, CompletionCall, Task>? completions = null, string[]? models = null)
    {
        completions ??= (ctx, call) => StreamAsync(ctx, call.PromptTokens, call.MaxTokens);
        models ??= ["fake-model"];
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        FakeOpenAiServer? server = null;
        app.MapGet("/v1/models", () =>
        {
            Interlocked.Increment(ref server!._modelCalls);
            return Results.Json(new { @object = "list", data = models.Select(id => new { id, @object = "model" }) });
        });
        app.MapPost("/v1/completions", async ctx =>
        {
            var arrived = System.Diagnostics.Stopwatch.GetTimestamp();
            var inFlight = Interlocked.Increment(ref server!._inFlight);
            for (var max = Volatile.Read(ref server._maxInFlight); inFlight > max; max = Volatile.Read(ref server._maxInFlight))
            {
                Interlocked.CompareExchange(ref server._maxInFlight, inFlight, max);
            }

            try
            {
                using var doc = await JsonDocument.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted);
                var body = doc.RootElement.Clone();
                var prompt = body.GetProperty("prompt");
                var promptTokens = prompt.ValueKind == JsonValueKind.Array
                    ? prompt.GetArrayLength()
                    : prompt.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
                var call = new CompletionCall(Interlocked.Increment(ref server!._completions), body, promptTokens,
                    body.GetProperty("max_tokens").GetInt32(), ctx.Request.Headers.Authorization.FirstOrDefault(), arrived);
                server._calls.Enqueue(call);
                await completions(ctx, call);
            }
            finally
            {
                Interlocked.Decrement(ref server._inFlight);
            }
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server = new FakeOpenAiServer(app, new Uri(address.TrimEnd('/') + "/v1/"));
        return server;
    }

    /// <summary>Streams a completion of <paramref name="completionTokens"/> one-token chunks, then usage and [DONE].</summary>
    public static async Task StreamAsync(HttpContext ctx, int promptTokens, int completionTokens, bool usage = true, bool done = true,
        int usagePromptTokens = -1, int usageCompletionTokens = -1)
    {
        ctx.Response.ContentType = "text/event-stream";
        for (var n = 0; n < completionTokens; n++)
        {
            var finish = n == completionTokens - 1 ? "\"length\"" : "null";
            await WriteEventAsync(ctx, $$"""{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" t{{n}}","finish_reason":{{finish}}}]}""");
        }

        if (usage)
        {
            var p = usagePromptTokens >= 0 ? usagePromptTokens : promptTokens;
            var c = usageCompletionTokens >= 0 ? usageCompletionTokens : completionTokens;
            await WriteEventAsync(ctx,
                $$$"""{"id":"cmpl-1","object":"text_completion","choices":[],"usage":{"prompt_tokens":{{{p}}},"completion_tokens":{{{c}}},"total_tokens":{{{p + c}}}}}""");
        }

        if (done)
        {
            await WriteEventAsync(ctx, "[DONE]");
        }
    }

    public static async Task WriteEventAsync(HttpContext ctx, string data)
    {
        await ctx.Response.WriteAsync($"data: {data}\n\n", ctx.RequestAborted);
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
    }

    /// <summary>An OpenAI-style error answer.</summary>
    public static Task ErrorAsync(HttpContext ctx, int status, string message)
    {
        ctx.Response.StatusCode = status;
        return ctx.Response.WriteAsJsonAsync(new { error = new { message, type = "BadRequestError", code = status } }, ctx.RequestAborted);
    }

    /// <summary>A loopback port with nothing listening on it (bound, read, then released).</summary>
    public static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
