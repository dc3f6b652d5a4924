using Lens.Abstractions;
using Lens.Client;
using Lens.Silo;
using Microsoft.Extensions.Logging;

namespace Lens.Service.Tests;

/// <summary>
/// <see cref="Lens.Grains.LensGrainOptions.ModelVersionTtl"/>: with a TTL the predictor trusts the model version it checked for that
/// long (one grain call saved per prediction); without one (the default, covered by the profiling tests) it checks on every call.
/// </summary>
public sealed class PredictorVersionTtlTests
{
    private const string Key = "acme-key-0123456789abcdef";

    [Fact]
    public async Task Within_the_ttl_the_predictor_keeps_the_version_it_checked()
    {
        var options = new LensServerOptions
        {
            SiloPort = TestModels.FreePort(),
            GatewayPort = TestModels.FreePort(),
            HttpPort = 0,
            ServiceId = "lens-ttl-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["acme"] = Key },
        };
        options.Grains.ModelVersionTtl = TimeSpan.FromHours(1);
        await using var server = await LensHost.StartAsync(options, b => b.Logging.SetMinimumLevel(LogLevel.Warning));
        using var http = new HttpClient { BaseAddress = server.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        var lens = new LensHttpClient(http, Key);
        var id = (await lens.CreateDeploymentAsync("npu", TestModels.Spec("ttl"))).Id;
        await lens.StartProfileAsync("npu", id);
        Assert.Equal(ProfileState.Completed, (await lens.WaitForProfileAsync("npu", id, TimeSpan.FromMilliseconds(50))).State);
        var first = await lens.PredictAsync("npu", id, 200, 50);

        await lens.StartProfileAsync("npu", id, "decode-256");
        Assert.Equal(ProfileState.Completed, (await lens.WaitForProfileAsync("npu", id, TimeSpan.FromMilliseconds(50))).State);
        var newer = (await lens.GetDeploymentAsync("npu", id)).ModelVersion;
        Assert.True(newer > first.ModelVersion);

        // The predictor activation checked the version an instant ago: it keeps serving that one for the TTL.
        Assert.Equal(first.ModelVersion, (await lens.PredictAsync("npu", id, 200, 50)).ModelVersion);
    }
}
