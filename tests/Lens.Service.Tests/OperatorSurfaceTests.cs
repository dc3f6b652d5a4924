using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Lens.Abstractions;
using Lens.Client;

namespace Lens.Service.Tests;

/// <summary>Issue 11, findings 2 and 9: <c>/metrics</c> and the dashboard need the operator's key; tenant labels are opt-in; OpenAPI declares X-Api-Key.</summary>
public sealed class OperatorSurfaceTests
{
    private const string OperatorKey = HttpHostFixture.OperatorKey;

    [Fact]
    public async Task Metrics_and_dashboard_need_the_operator_key_and_name_no_tenant_by_default()
    {
        await using var server = await SecureHost.StartAsync(SecureHost.Options(o =>
        {
            o.OperatorApiKey = OperatorKey;
            o.DashboardPath = "/dashboard";
        }));
        using var http = new HttpClient { BaseAddress = server.HttpAddress };
        var device = await ObserveAsync(http);

        foreach (var path in new[] { "metrics", "dashboard" })
        {
            using var anonymous = await http.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            using var tenant = await http.SendAsync(SecureHost.Request(HttpMethod.Get, path, HttpHostFixture.AcmeKey));
            Assert.Equal(HttpStatusCode.Unauthorized, tenant.StatusCode);
        }

        using var byHeader = await http.SendAsync(SecureHost.Request(HttpMethod.Get, "metrics", OperatorKey));
        Assert.Equal(HttpStatusCode.OK, byHeader.StatusCode);
        var metrics = await byHeader.Content.ReadAsStringAsync();
        Assert.Contains("lens_telemetry_observations", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain("lens_deployment", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain(device, metrics, StringComparison.Ordinal);
        Assert.DoesNotContain("acme", metrics, StringComparison.Ordinal);

        using var bearer = new HttpRequestMessage(HttpMethod.Get, "metrics");
        bearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", OperatorKey);
        using var byBearer = await http.SendAsync(bearer);
        Assert.Equal(HttpStatusCode.OK, byBearer.StatusCode);
        using var dashboard = await http.SendAsync(SecureHost.Request(HttpMethod.Get, "dashboard", OperatorKey));
        Assert.NotEqual(HttpStatusCode.Unauthorized, dashboard.StatusCode);
    }

    [Fact]
    public async Task Without_an_operator_key_metrics_answer_401_to_everyone()
    {
        await using var server = await SecureHost.StartAsync(SecureHost.Options());
        using var http = new HttpClient { BaseAddress = server.HttpAddress };
        using var anonymous = await http.GetAsync("metrics");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Contains("Lens:OperatorApiKey", await anonymous.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var tenant = await http.SendAsync(SecureHost.Request(HttpMethod.Get, "metrics", HttpHostFixture.AcmeKey));
        Assert.Equal(HttpStatusCode.Unauthorized, tenant.StatusCode);
    }

    [Fact]
    public async Task Tenant_labels_are_exported_when_the_operator_opts_in()
    {
        await using var server = await SecureHost.StartAsync(SecureHost.Options(o =>
        {
            o.OperatorApiKey = OperatorKey;
            o.Metrics.TenantLabels = true;
        }));
        using var http = new HttpClient { BaseAddress = server.HttpAddress };
        var device = await ObserveAsync(http);
        using var response = await http.SendAsync(SecureHost.Request(HttpMethod.Get, "metrics", OperatorKey));
        Assert.Contains($"lens_deployment=\"acme/{device}/", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_openapi_document_declares_the_api_key_on_every_v1_operation()
    {
        await using var server = await SecureHost.StartAsync(SecureHost.Options());
        using var http = new HttpClient { BaseAddress = server.HttpAddress };
        using var doc = JsonDocument.Parse(await http.GetStringAsync("openapi/v1.json"));
        var scheme = doc.RootElement.GetProperty("components").GetProperty("securitySchemes").GetProperty("ApiKey");
        Assert.Equal("apiKey", scheme.GetProperty("type").GetString());
        Assert.Equal("header", scheme.GetProperty("in").GetString());
        Assert.Equal("X-Api-Key", scheme.GetProperty("name").GetString());
        var operations = 0;
        foreach (var path in doc.RootElement.GetProperty("paths").EnumerateObject().Where(p => p.Name.StartsWith("/v1/", StringComparison.Ordinal)))
        {
            foreach (var operation in path.Value.EnumerateObject())
            {
                var security = operation.Value.GetProperty("security");
                Assert.Contains(security.EnumerateArray(), r => r.TryGetProperty("ApiKey", out _));
                operations++;
            }
        }

        Assert.True(operations >= 12, $"{operations} /v1 operations");
        var listDevices = doc.RootElement.GetProperty("paths").GetProperty("/v1/devices").GetProperty("get");
        Assert.Equal("ListDevices", listDevices.GetProperty("operationId").GetString());
        var history = doc.RootElement.GetProperty("paths").GetProperty("/v1/devices/{device}/deployments/{deployment}/health/history").GetProperty("get");
        Assert.Equal("GetHealthHistory", history.GetProperty("operationId").GetString());
        Assert.Contains(history.GetProperty("parameters").EnumerateArray(), p => p.GetProperty("name").GetString() == "last" && p.GetProperty("in").GetString() == "query");
    }

    /// <summary>Profiles a replayed deployment on a new device of acme and reports one observation; returns the device.</summary>
    private static async Task<string> ObserveAsync(HttpClient http)
    {
        var acme = new LensHttpClient(http, HttpHostFixture.AcmeKey);
        var device = "dev-" + Guid.NewGuid().ToString("N")[..8];
        var id = (await acme.CreateDeploymentAsync(device, TestModels.Spec("llama"))).Id;
        await acme.StartProfileAsync(device, id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Assert.Equal(ProfileState.Completed, (await acme.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token)).State);
        await acme.ReportTelemetryAsync(device, id, new MeasurementBatch([new MeasurementInput(100, 10, 123.4, 21)], "obs1"));
        return device;
    }
}
