using Lens.Abstractions;
using Lens.Client;
using Lens.Grains;
using Lens.Measurement;
using Lens.Measurement.Tests;
using Lens.Silo;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;

namespace Lens.Service.Tests;

/// <summary>
/// Issue 11, finding 1: backends belong to tenants. Tenant acme has backend <c>npu-a</c> (a real loopback fake server, with a key the
/// operator set); tenant globex has none, and tries to use acme's, or a free endpoint of its own, or a key variable of the server's.
/// </summary>
public sealed class TenantBackendTests : IAsyncLifetime
{
    private const string AcmeBackendKey = "acme-backend-secret-0123";
    private FakeOpenAiServer _npuA = null!;
    private FakeOpenAiServer _failing = null!;
    private FakeOpenAiServer _attacker = null!;
    private LensServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _npuA = await FakeOpenAiServer.StartAsync();
        _failing = await FakeOpenAiServer.StartAsync((ctx, _) =>
            FakeOpenAiServer.ErrorAsync(ctx, 400, "Authorization: Bearer " + AcmeBackendKey + "\n" + new string('x', 5000)));
        _attacker = await FakeOpenAiServer.StartAsync();
        Environment.SetEnvironmentVariable("LENS_BACKEND_ACME", AcmeBackendKey);
        var options = SecureHost.Options(o =>
        {
            o.AllowLocalBackendAddresses = true; // the fake servers are on loopback
            o.TenantBackends["acme"] = new()
            {
                ["npu-a"] = new LensBackendOptions { Endpoint = _npuA.BaseAddress.ToString(), ApiKey = AcmeBackendKey },
                ["npu-broken"] = new LensBackendOptions { Endpoint = _failing.BaseAddress.ToString(), ApiKeyEnvironmentVariable = "LENS_BACKEND_ACME" },
            };
        });
        _server = await SecureHost.StartAsync(options);
        _http = new HttpClient { BaseAddress = _server.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        await _npuA.DisposeAsync();
        await _failing.DisposeAsync();
        await _attacker.DisposeAsync();
    }

    private static DeploymentSpec Spec(BackendSpec backend) =>
        new("vllm", "fake-model", [16, 32], [16, 32, 64], backend, Repeats: 1);

    [Fact]
    public async Task Another_tenants_backend_a_free_endpoint_or_a_server_key_variable_is_refused_and_nothing_is_called()
    {
        var globex = new LensHttpClient(_http, HttpHostFixture.GlobexKey);
        var stolen = await Assert.ThrowsAsync<LensApiException>(() =>
            globex.CreateDeploymentAsync("npu-0", Spec(new BackendSpec(BackendSpec.OpenAi, ModelName: "fake-model", Name: "npu-a"))));
        Assert.Equal(400, stolen.Status);
        Assert.Contains("backend.name", stolen.Errors.Keys);
        Assert.Contains("no backend 'npu-a' is configured for your tenant", stolen.Errors["backend.name"][0], StringComparison.Ordinal);

        var free = await Assert.ThrowsAsync<LensApiException>(() => globex.CreateDeploymentAsync("npu-0",
            Spec(new BackendSpec(BackendSpec.OpenAi, _attacker.BaseAddress.ToString(), "fake-model", ApiKeyEnvironmentVariable: "LENS_BACKEND_ACME"))));
        Assert.Equal(400, free.Status);
        Assert.Contains("backend.endpoint", free.Errors.Keys);
        Assert.Contains("backend.apiKeyEnvironmentVariable", free.Errors.Keys);

        // A free endpoint beside a real name is refused too: the name does not launder the address.
        var both = await Assert.ThrowsAsync<LensApiException>(() => new LensHttpClient(_http, HttpHostFixture.AcmeKey).CreateDeploymentAsync("npu-0",
            Spec(new BackendSpec(BackendSpec.OpenAi, _attacker.BaseAddress.ToString(), "fake-model", Name: "npu-a"))));
        Assert.Contains("backend.endpoint", both.Errors.Keys);

        Assert.Empty(await globex.ListDeploymentsAsync("npu-0"));
        Assert.Equal(0, _npuA.CompletionRequests + _npuA.ModelRequests);
        Assert.Equal(0, _attacker.CompletionRequests + _attacker.ModelRequests);
    }

    [Fact]
    public async Task A_stored_spec_with_a_free_endpoint_is_never_called()
    {
        // What a deployment stored before this rule holds; the silo's factory, for any tenant, refuses to build it.
        var factory = _server.Services.GetService(typeof(IMeasurementBackendFactory)) as IMeasurementBackendFactory;
        Assert.NotNull(factory);
        var old = new BackendSpec(BackendSpec.OpenAi, _attacker.BaseAddress.ToString(), "fake-model", ApiKeyEnvironmentVariable: "LENS_BACKEND_ACME");
        var ex = Assert.Throws<ArgumentException>(() => factory.Create("acme", old));
        Assert.Contains("free endpoint", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => factory.Create("globex", old with { Endpoint = null, ApiKeyEnvironmentVariable = null, Name = "npu-a" }));
        Assert.Equal(0, _attacker.CompletionRequests + _attacker.ModelRequests);
    }

    [Fact]
    public async Task A_tenants_own_backend_profiles_with_the_operators_key()
    {
        var acme = new LensHttpClient(_http, HttpHostFixture.AcmeKey);
        var created = await acme.CreateDeploymentAsync("npu-1", Spec(new BackendSpec(BackendSpec.OpenAi, ModelName: "fake-model", Name: "npu-a")));
        Assert.Null(created.Spec.Backend.Endpoint);
        await acme.StartProfileAsync("npu-1", created.Id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var done = await acme.WaitForProfileAsync("npu-1", created.Id, TimeSpan.FromMilliseconds(50), wait.Token);
        Assert.True(done.State == ProfileState.Completed, done.LastError);
        Assert.Equal(done.Total, _npuA.CompletionRequests);
        Assert.All(_npuA.Calls, c => Assert.Equal("Bearer " + AcmeBackendKey, c.Authorization));
        Assert.Equal(0, _attacker.CompletionRequests);
    }

    [Fact]
    public async Task A_backends_error_reaches_the_tenant_trimmed_and_without_the_key()
    {
        var acme = new LensHttpClient(_http, HttpHostFixture.AcmeKey);
        var created = await acme.CreateDeploymentAsync("npu-2", Spec(new BackendSpec(BackendSpec.OpenAi, ModelName: "fake-model", Name: "npu-broken")));
        await acme.StartProfileAsync("npu-2", created.Id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var done = await acme.WaitForProfileAsync("npu-2", created.Id, TimeSpan.FromMilliseconds(50), wait.Token);
        Assert.Equal(ProfileState.Failed, done.State);
        Assert.True(_failing.CompletionRequests >= 1);
        Assert.NotNull(done.LastError);
        Assert.InRange(done.LastError.Length, 1, 300);
        Assert.DoesNotContain(AcmeBackendKey, done.LastError, StringComparison.Ordinal);
        Assert.DoesNotContain("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", done.LastError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8000/v1/")]
    [InlineData("http://127.9.9.9/v1/")]
    [InlineData("http://[::1]:8000/v1/")]
    [InlineData("http://169.254.169.254/latest/")]
    [InlineData("http://[fe80::1]/v1/")]
    [InlineData("http://0.0.0.0:8000/v1/")]
    [InlineData("http://localhost:8000/v1/")]
    [InlineData("http://[::ffff:127.0.0.1]/v1/")]
    public void Local_and_metadata_addresses_are_refused_in_operator_settings_unless_allowed(string endpoint)
    {
        var options = SecureHost.Options(o => o.TenantBackends["acme"] = new() { ["local"] = new LensBackendOptions { Endpoint = endpoint } });
        var ex = Assert.Throws<LensConfigurationException>(options.Validate);
        Assert.Contains("Lens:Tenants:acme:Backends:local:Endpoint", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Lens:AllowLocalBackendAddresses", ex.Message, StringComparison.Ordinal);

        options.AllowLocalBackendAddresses = true;
        options.Validate();
        Assert.Throws<ArgumentException>(() => new OpenAiCompletionsBackend(new OpenAiCompletionsOptions
        {
            BaseAddress = new Uri(endpoint),
            RefuseLocalAddresses = true,
        }, logger: NullLogger.Instance));
    }

    [Fact]
    public void Backends_are_read_from_configuration_under_their_tenant()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Lens:Tenants:acme:ApiKey"] = HttpHostFixture.AcmeKey,
            ["Lens:Tenants:acme:Backends:npu-a:Endpoint"] = "https://10.0.0.5/v1/",
            ["Lens:Tenants:acme:Backends:npu-a:ApiKey"] = "backend-key",
            ["Lens:Tenants:globex:ApiKey"] = HttpHostFixture.GlobexKey,
            ["Lens:OperatorApiKey"] = "operator-key-0123456789",
            ["Lens:Metrics:TenantLabels"] = "true",
        }).Build();
        var options = LensServerOptions.FromConfiguration(configuration);
        options.Validate();
        Assert.Equal(2, options.Tenants.Count);
        var catalog = options.ToTenantBackends();
        Assert.Equal(new TenantBackend(new Uri("https://10.0.0.5/v1/"), "backend-key"), catalog.Find("acme", "npu-a"));
        Assert.DoesNotContain("backend-key", catalog.Find("acme", "npu-a")!.ToString(), StringComparison.Ordinal);
        Assert.Null(catalog.Find("globex", "npu-a"));
        Assert.True(options.Metrics.TenantLabels);
        Assert.Equal("operator-key-0123456789", options.OperatorApiKey);
    }

    [Fact]
    public void A_public_endpoint_passes_and_a_backend_without_a_tenant_key_is_named()
    {
        var options = SecureHost.Options(o =>
        {
            o.TenantBackends["acme"] = new() { ["npu-a"] = new LensBackendOptions { Endpoint = "https://10.1.2.3:8000/v1/" } };
            o.TenantBackends["nobody"] = new() { ["x"] = new LensBackendOptions { Endpoint = "https://10.1.2.4/v1/", ApiKeyEnvironmentVariable = "LENS_UNSET_VARIABLE_X" } };
        });
        var ex = Assert.Throws<LensConfigurationException>(options.Validate);
        Assert.Contains("tenant 'nobody' has backends but no API key", ex.Message, StringComparison.Ordinal);
        Assert.Contains("names LENS_UNSET_VARIABLE_X, which is not set", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("npu-a", ex.Message, StringComparison.Ordinal);
        Assert.False(EndpointPolicy.IsLocal(System.Net.IPAddress.Parse("10.1.2.3")));
        Assert.True(EndpointPolicy.IsLocal(System.Net.IPAddress.Parse("169.254.10.20")));
    }
}
