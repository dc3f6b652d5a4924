using Lens.Testing;
using System.Text.Json;
using Azure.Data.Tables;
using Lens.Abstractions;
using Lens.Client;
using Lens.Grains;
using Lens.Silo;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Storage;

namespace Lens.Service.Tests;

/// <summary>The durable mode against Azurite: Azure Table grain state, clustering and reminders; whole silo restarts.</summary>
[Collection(AzuriteCollection.Name)]
[Trait("Category", "Azurite")]
public sealed partial class DurableStorageTests(AzuriteFixture azurite)
{
    private const string Key = "acme-key-0123456789abcdef";

    [Fact]
    public async Task State_survives_a_full_silo_restart()
    {
        var options = Options();
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        string id, buckets, model, progress, deployment, measurements;
        await using (var first = await StartAsync(options))
        {
            var lens = Client(first, out var http);
            using (http)
            {
                id = (await lens.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device))).Id;
                await lens.StartProfileAsync(device, id);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                Assert.Equal(ProfileState.Completed, (await lens.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token)).State);
                await lens.ReportTelemetryAsync(device, id, new MeasurementBatch([new MeasurementInput(100, 10, 150)], "t1"));
                (buckets, model, progress, deployment, measurements) = await ReadAllAsync(lens, device, id);
            }
        }

        await using var second = await StartAsync(Options(options));
        var again = Client(second, out var http2);
        using (http2)
        {
            var (buckets2, model2, progress2, deployment2, measurements2) = await ReadAllAsync(again, device, id);
            Assert.Equal(deployment, deployment2);
            Assert.Equal(progress, progress2);
            Assert.Equal(buckets, buckets2);
            Assert.Equal(measurements, measurements2);
            Assert.Equal(model, model2);
            TestModels.AssertSameModel(TestModels.Source(), model2);
            Assert.Equal(1, (await again.GetBucketsAsync(device, id)).Sum(b => b.TelemetryCount));
        }

        // The state really is in this run's own tables.
        var tables = new TableServiceClient(azurite.ConnectionString);
        var rows = 0;
        await foreach (var row in tables.GetTableClient(options.TablePrefix + "grains").QueryAsync<TableEntity>(maxPerPage: 100))
        {
            Assert.True(row.PartitionKey.Contains("acme|", StringComparison.Ordinal) || row.PartitionKey.Contains("device-directory", StringComparison.Ordinal) && row.PartitionKey.EndsWith("acme", StringComparison.Ordinal), row.PartitionKey);
            rows++;
        }

        Assert.True(rows >= 1 + TestModels.Decode.Length, $"{rows} grain rows"); // the device and every profiled bucket
    }

    [Fact]
    public async Task Health_history_survives_a_restart_and_its_worst_case_fits_a_table_row()
    {
        var options = Options();
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        static MeasurementBatch Batch(int k) =>
            new([.. Enumerable.Range(0, 20).Select(n => new MeasurementInput(10 + 7 * n, 5 + n, 60 + 3 * n + k))], $"h{k}");
        string id, before;
        await using (var first = await StartAsync(options))
        {
            var lens = Client(first, out var http);
            using (http)
            {
                id = (await lens.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device))).Id;
                await lens.StartProfileAsync(device, id);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                Assert.Equal(ProfileState.Completed, (await lens.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token)).State);
                for (var k = 0; k < 3; k++)
                {
                    await lens.ReportTelemetryAsync(device, id, Batch(k));
                }

                var history = await lens.GetHealthHistoryAsync(device, id);
                Assert.Equal((288, 3), (history.Capacity, history.Entries.Length)); // the default length
                before = Json(history.Entries);
            }

            // The worst case the capacity allows, written and read through the silo's own Azure Table storage: 288 entries of a
            // 20-bucket deployment, and as many as fit of a 512-bucket one, every value at its widest.
            var storage = first.Services.GetRequiredKeyedService<IGrainStorage>(LensGrainOptions.StorageName);
            foreach (var buckets in new[] { 20, 512 })
            {
                var capacity = Core.HealthHistory.Capacity(288, buckets);
                var widest = new HealthHistoryEntry(DateTimeOffset.MaxValue.AddDays(-1), -98.9999, int.MaxValue, Filled(buckets, int.MaxValue),
                    Filled<double?>(buckets, 99998.99), Filled<double?>(buckets, -98.9999), Filled(buckets, 98.9999), Filled(buckets, int.MaxValue),
                    Filled(buckets, false), "traffic", $"decode-{int.MaxValue}-b{int.MaxValue}"); // the widest source and re-profiled cell
                var state = new GrainState<HealthHistoryState>(new HealthHistoryState { Entries = [.. Enumerable.Repeat(widest, capacity)] });
                var grain = GrainId.Create("monitor", $"acme/worst-{buckets}/d-0123456789");
                await storage.WriteStateAsync("healthHistory", grain, state);
                var read = new GrainState<HealthHistoryState>(new HealthHistoryState());
                await storage.ReadStateAsync("healthHistory", grain, read);
                Assert.Equal(capacity, read.State!.Entries.Count);
                Assert.Equal(int.MaxValue, read.State.Entries[^1].ConsecutiveDrift[^1]);
                Assert.Equal(widest.Reprofiling, read.State.Entries[^1].Reprofiling);
            }
        }

        await using var second = await StartAsync(Options(options));
        var again = Client(second, out var http2);
        using (http2)
        {
            Assert.Equal(before, Json((await again.GetHealthHistoryAsync(device, id)).Entries)); // the window is gone; the history is not
            await again.ReportTelemetryAsync(device, id, Batch(3));
            var after = await again.GetHealthHistoryAsync(device, id);
            Assert.Equal(4, after.Entries.Length);
            Assert.Equal(before, Json(after.Entries[..3]));
            Assert.Equal(20, after.Entries[^1].Observations.Where((_, b) => after.Buckets[b].StartsWith("prefill", StringComparison.Ordinal)).Sum());
        }
    }

    private static T[] Filled<T>(int length, T value) => Enumerable.Repeat(value, length).ToArray();

    [Fact]
    public async Task The_device_list_survives_a_restart_and_a_device_stored_before_the_directory_lists_itself_when_it_activates()
    {
        var options = Options();
        string[] devices = ["npu-b-" + Guid.NewGuid().ToString("N")[..8], "npu-a-" + Guid.NewGuid().ToString("N")[..8]];
        DeviceSummary[] listed;
        await using (var first = await StartAsync(options))
        {
            var lens = Client(first, out var http);
            using (http)
            {
                foreach (var device in devices)
                {
                    await lens.CreateDeploymentAsync(device, TestModels.Spec("llama"));
                }

                listed = await lens.ListDevicesAsync();
                Assert.Equal([new DeviceSummary(devices[1], 1), new DeviceSummary(devices[0], 1)], listed);
            }
        }

        await using (var second = await StartAsync(Options(options)))
        {
            var lens = Client(second, out var http);
            using (http)
            {
                Assert.Equal(listed, await lens.ListDevicesAsync());
            }
        }

        // As if the devices were stored before the directory existed: its row goes, and a device lists itself when it next activates.
        var table = new TableServiceClient(azurite.ConnectionString).GetTableClient(options.TablePrefix + "grains");
        var removed = 0;
        await foreach (var row in table.QueryAsync<TableEntity>(maxPerPage: 100))
        {
            if (row.PartitionKey.Contains("device-directory", StringComparison.Ordinal))
            {
                await table.DeleteEntityAsync(row.PartitionKey, row.RowKey);
                removed++;
            }
        }

        Assert.Equal(1, removed);
        await using var third = await StartAsync(Options(options));
        var again = Client(third, out var http3);
        using (http3)
        {
            Assert.Empty(await again.ListDevicesAsync());
            Assert.Single(await again.ListDeploymentsAsync(devices[0])); // activates the device grain
            Assert.Equal([new DeviceSummary(devices[0], 1)], await again.ListDevicesAsync());
        }
    }

    [Fact]
    public async Task A_silo_stopped_mid_profile_loses_no_finished_measurement_and_the_profile_completes()
    {
        var options = Options();
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var control = BackendControl.For(device);
        control.Delay = TimeSpan.FromMilliseconds(5);
        control.PauseAfter = 10;
        var spec = TestModels.Spec("llama", control: device, repeats: 4);
        var total = spec.CreatePlan().Rows.Count;
        string id;
        int measuredAtStop;
        await using (var first = await StartAsync(options))
        {
            var lens = Client(first, out var http);
            using (http)
            {
                id = (await lens.CreateDeploymentAsync(device, spec)).Id;
                await lens.StartProfileAsync(device, id);
                // Ten measurements finish; the eleventh waits on the device when the silo stops (and is cancelled by the stop).
                await TestModels.Until(() => Task.FromResult(control.Paused), "ten measurements");
            }

            await first.StopAsync();
            measuredAtStop = control.Measured;
        }

        Assert.Equal(10, measuredAtStop);
        control.PauseAfter = null;
        await using var second = await StartAsync(Options(options));
        var again = Client(second, out var http2);
        using (http2)
        {
            // Every measurement that finished before the stop is stored; the resumed run goes on from the next row.
            var resumed = await again.GetProfileProgressAsync(device, id);
            Assert.True(resumed.Done >= measuredAtStop, $"done {resumed.Done} after restart, {measuredAtStop} measured before it");

            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            var done = await again.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token);
            Assert.Equal(ProfileState.Completed, done.State);
            Assert.Equal(total, done.Done);
            Assert.Equal(total, control.Measured); // none lost, none measured twice

            // Each plan row is stored exactly once, in its bucket.
            var ids = new List<string>();
            foreach (var bucket in spec.ToBucketSet().AllBuckets())
            {
                ids.AddRange((await again.GetBucketMeasurementsAsync(device, id, bucket.ToString())).Select(m => m.Id));
            }

            Assert.Equal(Enumerable.Range(0, total).Select(i => $"{done.RunId}:{i}").Order(StringComparer.Ordinal), ids.Order(StringComparer.Ordinal));
            TestModels.AssertSameModel(TestModels.Source(), await again.GetModelJsonAsync(device, id));
        }
    }

    [Fact]
    public async Task After_a_restart_the_reminder_alone_resumes_an_unfinished_profile()
    {
        var options = Options();
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var control = BackendControl.For(device);
        control.PauseAfter = 5;
        var spec = TestModels.Spec("llama", control: device, repeats: 2);
        var total = spec.CreatePlan().Rows.Count;
        string id;
        await using (var first = await StartAsync(options))
        {
            var lens = Client(first, out var http);
            using (http)
            {
                id = (await lens.CreateDeploymentAsync(device, spec)).Id;
                await lens.StartProfileAsync(device, id);
                await TestModels.Until(() => Task.FromResult(control.Paused), "five measurements");
            }
        }

        control.PauseAfter = null;
        await using var second = await StartAsync(Options(options));

        // Nobody calls the device: its resume reminder (every 2 s here) activates it on the new silo and the run goes on.
        await TestModels.Until(() => Task.FromResult(control.Measured == total), "the resumed profile's measurements", seconds: 90);
        var again = Client(second, out var http2);
        using (http2)
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var done = await again.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token);
            Assert.Equal(ProfileState.Completed, done.State);
            Assert.Equal(total, done.Done);
            TestModels.AssertSameModel(TestModels.Source(), await again.GetModelJsonAsync(device, id));
        }
    }

    [Fact]
    public async Task Each_deployment_has_a_row_of_its_own_and_survives_a_restart_apart_from_its_siblings()
    {
        var options = Options();
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var source = TestModels.Source();
        string profiled, imported, untouched;
        string[] before;
        await using (var first = await StartAsync(options))
        {
            var lens = Client(first, out var http);
            using (http)
            {
                profiled = (await lens.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device))).Id;
                imported = (await lens.CreateDeploymentAsync(device, TestModels.Spec("mistral", control: device))).Id;
                untouched = (await lens.CreateDeploymentAsync(device, TestModels.Spec("qwen", control: device))).Id;
                await lens.StartProfileAsync(device, profiled);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                Assert.Equal(ProfileState.Completed, (await lens.WaitForProfileAsync(device, profiled, TimeSpan.FromMilliseconds(50), wait.Token)).State);
                await lens.ImportMeasurementsAsync(device, imported, new MeasurementBatch(
                    [.. new[] { 1, 64, 127 }.Select(o => new MeasurementInput(129, o, source.Predict(129, o).E2eMs, null, "decode-256"))], "i1"));
                before = await Task.WhenAll(new[] { profiled, imported, untouched }.Select(id => StateOfAsync(lens, device, id)));
            }
        }

        // One row per deployment grain, and the device's row holds names and ids, not specs.
        var table = new TableServiceClient(azurite.ConnectionString).GetTableClient(options.TablePrefix + "grains");
        var rows = new List<TableEntity>();
        await foreach (var row in table.QueryAsync<TableEntity>(maxPerPage: 100))
        {
            rows.Add(row);
        }

        static string TextOf(TableEntity row) =>
            string.Concat(row.Select(p => p.Value).OfType<string>()) +
            string.Concat(row.Select(p => p.Value).OfType<byte[]>().Select(System.Text.Encoding.UTF8.GetString));
        foreach (var id in new[] { profiled, imported, untouched })
        {
            var row = Assert.Single(rows, r => r.PartitionKey.EndsWith($"_deployment_acme|{device}|{id}", StringComparison.Ordinal));
            Assert.Contains("llama-3.1-8b", TextOf(row), StringComparison.Ordinal); // its spec's model
        }

        var deviceRow = Assert.Single(rows, r => r.PartitionKey.EndsWith($"_device_acme|{device}", StringComparison.Ordinal));
        Assert.Contains(untouched, TextOf(deviceRow), StringComparison.Ordinal);
        Assert.DoesNotContain("llama-3.1-8b", TextOf(deviceRow), StringComparison.Ordinal);

        // After the restart each deployment reads back as it was: its own spec, run, model version and buckets.
        await using var second = await StartAsync(Options(options));
        var again = Client(second, out var http2);
        using (http2)
        {
            Assert.Equal(before[1], await StateOfAsync(again, device, imported)); // read first, alone
            Assert.Equal(before[2], await StateOfAsync(again, device, untouched));
            Assert.Equal(before[0], await StateOfAsync(again, device, profiled));
            Assert.Equal(3, (await again.ListDeploymentsAsync(device)).Length);
            Assert.Equal(ProfileState.None, (await again.GetProfileProgressAsync(device, untouched)).State);
            Assert.True((await again.GetDeploymentAsync(device, imported)).ModelVersion > 0);
            TestModels.AssertSameModel(source, await again.GetModelJsonAsync(device, profiled));

            // The largest bound allowed, at its widest: every name at its longest, every deployment queued, in one device row.
            var storage = second.Services.GetRequiredKeyedService<IGrainStorage>(LensGrainOptions.StorageName);
            var names = Enumerable.Range(0, LensGrainOptions.DeploymentsPerDeviceLimit)
                .Select(n => $"{n:D5}".PadRight(DeploymentSpec.MaxNameLength, 'n')).ToDictionary(n => n, n => n + "-0123456789");
            var widest = new DeviceState { Names = names, Queue = [.. names.Values] };
            var grain = GrainId.Create("device", $"acme|widest-{Guid.NewGuid():N}");
            await storage.WriteStateAsync("device", grain, new GrainState<DeviceState>(widest));
            var read = new GrainState<DeviceState>(new DeviceState());
            await storage.ReadStateAsync("device", grain, read);
            Assert.Equal(names, read.State!.Names);
            Assert.Equal(LensGrainOptions.DeploymentsPerDeviceLimit, read.State.Queue.Count);
        }
    }

    [Fact]
    public async Task A_device_row_of_the_old_shape_hands_each_deployment_to_its_grain_once_and_its_queued_run_completes()
    {
        var options = Options();
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var done = TestModels.Spec("llama", control: device).Normalized();
        var queued = TestModels.Spec("mistral", control: device, repeats: 2).Normalized();
        var created = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);
        var finishedRun = new ProfileRun
        {
            RunId = "old-run", DeploymentId = done.DeploymentId, Total = 9, NextIndex = 9, State = ProfileState.Completed,
            StartedAt = created, FinishedAt = created.AddMinutes(1),
        };
        var queuedRun = new ProfileRun
        {
            RunId = "old-queued", DeploymentId = queued.DeploymentId, Total = queued.CreatePlan().Rows.Count, State = ProfileState.Queued,
        };

        // What the old device grain stored: every spec in the device's row, runs by deployment, the queue; no names.
        var old = new DeviceState
        {
            Deployments =
            {
                [done.DeploymentId] = new DeploymentEntry { Spec = done, CreatedAt = created, ModelVersion = 7 },
                [queued.DeploymentId] = new DeploymentEntry { Spec = queued, CreatedAt = created.AddDays(1), ModelVersion = 0 },
            },
            Runs = { [done.DeploymentId] = finishedRun, [queued.DeploymentId] = queuedRun },
            Queue = { queued.DeploymentId },
            Names = null,
        };
        var grain = GrainId.Create("device", new DeviceKey("acme", device).Format());
        await using (var first = await StartAsync(options))
        {
            var storage = first.Services.GetRequiredKeyedService<IGrainStorage>(LensGrainOptions.StorageName);
            await storage.WriteStateAsync("device", grain, new GrainState<DeviceState>(old));
        }

        await using (var second = await StartAsync(Options(options)))
        {
            var lens = Client(second, out var http);
            using (http)
            {
                var listed = await lens.ListDeploymentsAsync(device);
                Assert.Equal(new[] { done.DeploymentId, queued.DeploymentId }.Order(StringComparer.Ordinal), listed.Select(d => d.Id));
                var one = Assert.Single(listed, d => d.Id == done.DeploymentId);
                Assert.Equal((created, 7L, "llama"), (one.CreatedAt, one.ModelVersion, one.Spec.Name));
                Assert.Equal("old-run", (await lens.GetProfileProgressAsync(device, done.DeploymentId)).RunId);

                // The old queue goes on: the queued run is measured through its deployment grain.
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(90));
                var resumed = await lens.WaitForProfileAsync(device, queued.DeploymentId, TimeSpan.FromMilliseconds(50), wait.Token);
                Assert.Equal(("old-queued", ProfileState.Completed, queuedRun.Total), (resumed.RunId, resumed.State, resumed.Done));
                TestModels.AssertSameModel(TestModels.Source(), await lens.GetModelJsonAsync(device, queued.DeploymentId));

                // The device row is rewritten without the specs (the hand-over runs once, in the background).
                var storage = second.Services.GetRequiredKeyedService<IGrainStorage>(LensGrainOptions.StorageName);
                await TestModels.Until(async () =>
                {
                    var read = new GrainState<DeviceState>(new DeviceState());
                    await storage.ReadStateAsync("device", grain, read);
                    return read.State!.Deployments.Count == 0 && read.State.Runs.Count == 0 && read.State.Names?.Count == 2;
                }, "the device row to lose its old-shape specs");
                Assert.Equal([new DeviceSummary(device, 2)], await lens.ListDevicesAsync());
            }
        }

        await using var third = await StartAsync(Options(options));
        var again = Client(third, out var http3);
        using (http3)
        {
            var listed = await again.ListDeploymentsAsync(device);
            Assert.Equal(2, listed.Length);
            Assert.Equal(7, Assert.Single(listed, d => d.Id == done.DeploymentId).ModelVersion);
            Assert.Equal(ProfileState.Completed, (await again.GetProfileProgressAsync(device, queued.DeploymentId)).State);
        }
    }

    private static async Task<string> StateOfAsync(LensHttpClient lens, string device, string id) =>
        Json(await lens.GetDeploymentAsync(device, id)) + Json(await lens.GetProfileProgressAsync(device, id)) +
        Json(await lens.GetBucketsAsync(device, id));

    private LensServerOptions Options(LensServerOptions? same = null) => new()
    {
        Storage = LensStorageMode.AzureTable,
        AzureStorageConnectionString = azurite.ConnectionString,
        TablePrefix = same?.TablePrefix ?? "t" + Guid.NewGuid().ToString("N")[..12],
        ServiceId = same?.ServiceId ?? "lens-" + Guid.NewGuid().ToString("N")[..8],
        ClusterId = same?.ClusterId ?? "lens-test",
        SiloPort = TestModels.FreePort(),
        GatewayPort = TestModels.FreePort(),
        HttpPort = 0,
        Tenants = { ["acme"] = Key },
        Grains = { InitialBackoff = TimeSpan.FromMilliseconds(5), ResumeCheckPeriod = TimeSpan.FromSeconds(2) },
    };

    private static Task<LensServer> StartAsync(LensServerOptions options) => LensHost.StartAsync(options, b =>
    {
        b.Logging.SetMinimumLevel(LogLevel.Warning).QuietExpected();
        b.Services.AddSingleton<IMeasurementBackendFactory, ControlledBackendFactory>();
    });

    private static LensHttpClient Client(LensServer server, out HttpClient http)
    {
        http = new HttpClient { BaseAddress = server.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        return new LensHttpClient(http, Key);
    }

    private static async Task<(string, string, string, string, string)> ReadAllAsync(LensHttpClient lens, string device, string id)
    {
        var buckets = await lens.GetBucketsAsync(device, id);
        var measurements = new List<MeasurementRecord>();
        foreach (var b in buckets)
        {
            measurements.AddRange(await lens.GetBucketMeasurementsAsync(device, id, b.Bucket));
        }

        return (Json(buckets), await lens.GetModelJsonAsync(device, id), Json(await lens.GetProfileProgressAsync(device, id)),
            Json(await lens.GetDeploymentAsync(device, id)), Json(measurements));
    }

    private static string Json<T>(T value) => JsonSerializer.Serialize(value, LensJson.Options);
}
