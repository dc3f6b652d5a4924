using System.Globalization;
using System.Reflection;
using Lens.Abstractions;
using Lens.Client;
using Lens.Grains;
using Lens.Silo;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Lens.Service.Tests;

/// <summary>
/// Every <c>Lens:Grains</c> setting reaches the grains (issue 17, item 1: the silo host copied them by hand and forgot
/// MaxSimulateRequests and MaxAdviseRequests), and each request limit, set small, is enforced over HTTP on a real server.
/// </summary>
public sealed class GrainLimitsTests
{
    /// <summary>Every public settable property of the grain options: what an operator can set under <c>Lens:Grains</c>.</summary>
    private static readonly PropertyInfo[] Settings = [.. typeof(LensGrainOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanWrite && p.SetMethod!.IsPublic)];

    [Fact]
    public async Task Every_configured_grain_setting_reaches_the_grains_options()
    {
        Assert.True(Settings.Length >= 20, $"only {Settings.Length} settings found");
        var defaults = new LensGrainOptions();
        var values = new Dictionary<string, string?>
        {
            ["Lens:Tenants:acme:ApiKey"] = HttpHostFixture.AcmeKey,
            ["Lens:HttpPort"] = "0",
            ["Lens:SiloPort"] = TestModels.FreePort().ToString(CultureInfo.InvariantCulture),
            ["Lens:GatewayPort"] = TestModels.FreePort().ToString(CultureInfo.InvariantCulture),
        };
        var expected = new Dictionary<string, object>();
        foreach (var setting in Settings)
        {
            var value = OtherThanDefault(setting.GetValue(defaults)!);
            expected[setting.Name] = value;
            values[$"Lens:Grains:{setting.Name}"] = Convert.ToString(value, CultureInfo.InvariantCulture);
        }

        var options = LensServerOptions.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values).Build());
        await using var app = LensHost.Build(options); // built, never started
        var grains = app.Services.GetRequiredService<IOptions<LensGrainOptions>>().Value;
        var monitored = app.Services.GetRequiredService<IOptionsMonitor<LensGrainOptions>>().CurrentValue;
        foreach (var setting in Settings)
        {
            Assert.True(expected[setting.Name].Equals(setting.GetValue(grains)), $"Lens:Grains:{setting.Name} did not reach the grains' IOptions");
            Assert.True(expected[setting.Name].Equals(setting.GetValue(monitored)), $"Lens:Grains:{setting.Name} did not reach IOptionsMonitor");
        }
    }

    [Fact]
    public async Task A_silo_with_an_invalid_grain_setting_does_not_start()
    {
        // The grains' own registration (what the test cluster and embedders use) validates on start, not at the first grain call.
        using var host = new HostBuilder().UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(TestModels.FreePort(), TestModels.FreePort(), serviceId: "lens-bad-" + Guid.NewGuid().ToString("N")[..8]);
            ClusterFixture.ConfigureSilo(silo, o => o.MaxSimulateRequests = 0);
        }).Build();
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("Lens:Grains limits must be positive", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Each_request_limit_set_small_is_enforced_over_http()
    {
        var options = SecureHost.Options(o =>
        {
            o.Grains.MaxSimulateRequests = 37;
            o.Grains.MaxAdviseRequests = 41;
            o.Grains.MaxPredictionsPerCall = 43;
            o.Grains.MaxRowsPerImport = 47;
        });
        await using var server = await SecureHost.StartAsync(options);
        using var http = new HttpClient { BaseAddress = server.HttpAddress, Timeout = TimeSpan.FromSeconds(60) };
        var acme = new LensHttpClient(http, HttpHostFixture.AcmeKey);
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var spec = TestModels.Spec("llama");
        var id = (await acme.CreateDeploymentAsync(device, spec)).Id;
        var source = TestModels.Source();
        var rows = spec.CreatePlan().Rows.Select(r => new MeasurementInput(r.InputLength, r.OutputLength,
            source.Predict(r.InputLength, r.OutputLength).E2eMs)).ToArray();

        var tooMany = Enumerable.Repeat(rows[0], 48).ToArray();
        await Refused(() => acme.ImportMeasurementsAsync(device, id, new MeasurementBatch(tooMany, "too-many")), "47");
        foreach (var (chunk, n) in rows.Chunk(47).Select((c, n) => (c, n)))
        {
            await acme.ImportMeasurementsAsync(device, id, new MeasurementBatch(chunk, $"import{n}"));
        }

        await acme.ImportMeasurementsAsync(device, id, new MeasurementBatch(tooMany[..47], "at-the-limit"));

        WorkloadSpec Workload(int count) => new(20, count, InputDist: "uniform:1-300", OutputDist: "uniform:1-200");
        await Refused(() => acme.SimulateAsync(device, id, new SimulateRequest(Workload: Workload(38))), "37");
        Assert.Equal(37, (await acme.SimulateAsync(device, id, new SimulateRequest(Workload: Workload(37)))).Requests);

        await Refused(() => acme.AdviseAsync(device, id, new AdviseRequest(Workload: Workload(42), MaxBuckets: 3)), "41");
        Assert.Contains("\"frontier\"", await acme.AdviseAsync(device, id, new AdviseRequest(Workload: Workload(41), MaxBuckets: 3)),
            StringComparison.Ordinal);

        int[] Lengths(int n) => [.. Enumerable.Range(1, n).Select(i => 100 + i)];
        await Refused(() => acme.PredictManyAsync(device, id, Lengths(44), Lengths(44)), "43");
        Assert.Equal(43, (await acme.PredictManyAsync(device, id, Lengths(43), Lengths(43))).E2eMs.Length);
    }

    /// <summary>A 400 problem whose detail names the configured limit.</summary>
    private static async Task Refused(Func<Task> call, string limit)
    {
        var ex = await Assert.ThrowsAsync<LensApiException>(call);
        Assert.Equal(400, ex.Status);
        var said = ex.Detail + string.Concat(ex.Errors.Values.SelectMany(e => e));
        Assert.Contains($"{limit}", said, StringComparison.Ordinal);
    }

    /// <summary>A valid value that is not the default: one more (of a whole number, a time span's second), the other bool.</summary>
    private static object OtherThanDefault(object value) => value switch
    {
        int i => i + 1,
        double d => d + 0.5,
        bool b => !b,
        TimeSpan t => t + TimeSpan.FromSeconds(1),
        _ => throw new InvalidOperationException($"no test value for a setting of type {value.GetType().Name}: add one here"),
    };
}
