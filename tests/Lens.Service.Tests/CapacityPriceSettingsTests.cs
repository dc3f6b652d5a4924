using Lens.Abstractions;
using Lens.Client;
using Lens.Silo;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Lens.Service.Tests;

/// <summary>Prices per chip-hour from the tenant's settings: per device kind, else the tenant's default; the request's own wins.</summary>
public sealed class CapacityPriceSettingsTests : IAsyncLifetime
{
    private const string Key = "pricing-key-0123456789abcdef";
    private LensServer _server = null!;
    private HttpClient _http = null!;
    private LensHttpClient _client = null!;

    public async Task InitializeAsync()
    {
        var options = new LensServerOptions
        {
            SiloPort = TestModels.FreePort(),
            GatewayPort = TestModels.FreePort(),
            HttpPort = 0,
            ServiceId = "lens-price-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["pricing"] = Key },
        };
        _server = await LensHost.StartAsync(options, b =>
        {
            b.Logging.SetMinimumLevel(LogLevel.Warning);
            b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Lens:Tenants:pricing:PricePerChipHour"] = "2",
                ["Lens:Tenants:pricing:PricesPerChipHour:trn1"] = "0.5",
            });
        });
        _http = new HttpClient { BaseAddress = _server.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        _client = new LensHttpClient(_http, Key);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Candidates_without_a_price_take_the_tenants_price_for_their_kind_or_its_default()
    {
        var created = await _client.CreateDeploymentAsync("npu-0", TestModels.Spec("priced"));
        var source = TestModels.Source();
        var rows = Core.ProfilingPlanner.Create(source.Buckets).Rows.Select(r =>
        {
            var p = source.Predict(r.InputLength, r.OutputLength);
            return new MeasurementInput(r.InputLength, r.OutputLength, p.E2eMs, p.TtftMs, r.Bucket.ToString());
        }).ToArray();
        await _client.ImportMeasurementsAsync("npu-0", created.Id, new MeasurementBatch(rows, "priced-1"));

        var request = new CapacityRequest(
            [new("npu-0", created.Id, Chips: 2, DeviceKind: "trn1"), new("npu-0", created.Id, Chips: 2), new("npu-0", created.Id, PricePerChipHour: 7)],
            SloTtftMs: 5000, SloTpotMs: 1000, Workload: new WorkloadSpec(2, 50, InputDist: "uniform:1-100", OutputDist: "fixed:10"),
            Headroom: false);
        var report = await _client.CapacityAsync(request);
        Assert.Equal([0.5, 2.0, 7.0], report.Candidates.Select(c => c.PricePerChipHour!.Value));
        Assert.All(report.Candidates, c => Assert.Equal(c.Chips * c.PricePerChipHour!.Value, c.CostPerHour!.Value, 9));

        // A price in the request wins over the settings.
        var overridden = await _client.CapacityAsync(request with { PricePerChipHour = 3 });
        Assert.Equal([3.0, 3.0, 7.0], overridden.Candidates.Select(c => c.PricePerChipHour!.Value));
    }
}
