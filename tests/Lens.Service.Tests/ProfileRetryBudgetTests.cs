using Lens.Abstractions;
using Lens.Client;
using Lens.Measurement.Tests;
using Lens.Silo;

namespace Lens.Service.Tests;

/// <summary>
/// Issue 17, item 3: the service's profile worker measures through the one measurement loop with one retry budget. Before, the worker's
/// 5 attempts each ran the HTTP backend's own 4 (up to 20 requests for one row); now a row against a server that always fails
/// transiently costs exactly <c>Lens:Grains:MaxAttempts</c> requests. A real server on loopback, the silo's own backend factory.
/// </summary>
public sealed class ProfileRetryBudgetTests : IAsyncLifetime
{
    private const int MaxAttempts = 3;
    private FakeOpenAiServer _down = null!;
    private LensServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _down = await FakeOpenAiServer.StartAsync((ctx, _) => FakeOpenAiServer.ErrorAsync(ctx, 503, "engine is restarting"));
        var options = SecureHost.Options(o =>
        {
            o.AllowLocalBackendAddresses = true; // the fake server is on loopback
            o.TenantBackends["acme"] = new() { ["npu-down"] = new LensBackendOptions { Endpoint = _down.BaseAddress.ToString() } };
            o.Grains.MaxAttempts = MaxAttempts;
            o.Grains.InitialBackoff = TimeSpan.FromMilliseconds(5);
            o.Grains.MaxBackoff = TimeSpan.FromMilliseconds(20);
        });
        _server = await SecureHost.StartAsync(options);
        _http = new HttpClient { BaseAddress = _server.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        await _down.DisposeAsync();
    }

    [Fact]
    public async Task A_row_against_a_server_that_always_fails_transiently_costs_exactly_MaxAttempts_requests()
    {
        var acme = new LensHttpClient(_http, HttpHostFixture.AcmeKey);
        var spec = new DeploymentSpec("vllm", "fake-model", [16, 32], [16, 32, 64],
            new BackendSpec(BackendSpec.OpenAi, ModelName: "fake-model", Name: "npu-down"), Repeats: 1);
        var created = await acme.CreateDeploymentAsync("npu-retry", spec);

        await acme.StartProfileAsync("npu-retry", created.Id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var done = await acme.WaitForProfileAsync("npu-retry", created.Id, TimeSpan.FromMilliseconds(50), wait.Token);

        Assert.Equal(ProfileState.Failed, done.State); // the first row's failure ends the run
        Assert.Equal(0, done.Done);
        Assert.Equal(MaxAttempts, _down.CompletionRequests);
        Assert.Equal(0, _down.ModelRequests);
        Assert.Equal(MaxAttempts - 1, done.Retries);
        Assert.NotNull(done.LastError);
        Assert.EndsWith($"(gave up after {MaxAttempts} attempts)", done.LastError, StringComparison.Ordinal);
    }
}
