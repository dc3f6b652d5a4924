using Lens.Abstractions;
using Lens.Core;

namespace Lens.Service.Tests;

/// <summary>A chunked deployment's spec, measurements and served joint fit survive a whole silo restart (Azure Table storage).</summary>
public sealed partial class DurableStorageTests
{
    [Fact]
    public async Task A_policy_deployment_and_its_joint_fit_survive_a_full_silo_restart()
    {
        var options = Options();
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var spec = PolicyDevices.ChunkedSpec("chunked", repeats: 1);
        var buckets = new BucketSet([64], [64, 128, 256], DecodeConvention.AfterAppend, [4, 16, 64]);
        var truth = PolicyDevices.Truth(buckets, PolicyDevices.Chunked);
        var plan = PolicyPlanner.Create(buckets, PolicyDevices.Chunked);
        string id, state, model;
        await using (var first = await StartAsync(options))
        {
            var lens = Client(first, out var http);
            using (http)
            {
                id = (await lens.CreateDeploymentAsync(device, spec)).Id;
                await lens.ImportMeasurementsAsync(device, id, new MeasurementBatch(PolicyDevices.Measure(truth, plan, noise: 0, seed: 1), "chunked"));
                (state, model) = (await StateOfAsync(lens, device, id), await lens.GetModelJsonAsync(device, id));
            }
        }

        await using var second = await StartAsync(Options(options));
        var again = Client(second, out var http2);
        using (http2)
        {
            Assert.Equal(state, await StateOfAsync(again, device, id));                    // spec with its policy, buckets and their counts
            var reloaded = await again.GetModelJsonAsync(device, id);
            Assert.Equal(model, reloaded);                                                  // the same joint fit, refitted from stored rows
            PolicyDevices.AssertRecovered(truth, plan, ModelJson.Deserialize(reloaded, "served"));
            Assert.Equal(PolicyDevices.ChunkedWire.TokenBuckets!, (await again.GetDeploymentAsync(device, id)).Spec.Policy!.TokenBuckets!);
        }
    }
}
