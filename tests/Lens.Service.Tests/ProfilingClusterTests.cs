using System.Text.Json;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Grains;

namespace Lens.Service.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ProfilingClusterTests(ClusterFixture fixture)
{
    private readonly LensClusterClient _lens = new(fixture.Client, "acme");

    [Fact]
    public async Task Profiling_a_replayed_device_recovers_its_model_and_predicts_with_it()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var created = await _lens.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device));
        Assert.True(created.Created);
        var id = created.Deployment.Id;

        var started = await _lens.StartProfileAsync(device, id);
        Assert.Equal(ProfileState.Queued, started.State);
        var done = await WaitAsync(device, id);
        var plan = TestModels.Spec("llama").CreatePlan();
        Assert.Equal(ProfileState.Completed, done.State);
        Assert.Equal(plan.Rows.Count, done.Total);
        Assert.Equal(done.Total, done.Done);
        Assert.Equal(plan.Rows.Count, BackendControl.For(device).Measured);

        var source = TestModels.Source();
        TestModels.AssertSameModel(source, await _lens.GetModelJsonAsync(device, id));

        var p = await _lens.PredictAsync(device, id, 300, 400);
        var expected = source.Predict(300, 400);
        Assert.Equal(expected.E2eMs, p.E2eMs, 9);
        Assert.Equal(expected.TtftMs, p.TtftMs, 9);
        Assert.NotNull(p.TpotMs);

        int[] inputs = [1, 128, 129, 512, 300];
        int[] outputs = [1, 1, 127, 512, 700];
        var batch = await _lens.PredictManyAsync(device, id, inputs, outputs);
        for (var n = 0; n < inputs.Length; n++)
        {
            Assert.Equal(source.Predict(inputs[n], outputs[n]).E2eMs, batch.E2eMs[n], 9);
        }

        Assert.Null(batch.TpotMs[0]);

        // Each bucket holds exactly its own plan rows, once.
        foreach (var bucket in plan.Buckets.AllBuckets())
        {
            var stored = await _lens.GetBucketMeasurementsAsync(device, id, bucket.ToString());
            Assert.Equal(plan.RowsFor(bucket).Count(), stored.Length);
            Assert.All(stored, m => Assert.Equal(MeasurementSource.Profile, m.Source));
        }
    }

    [Fact]
    public async Task Reprofiling_one_bucket_changes_only_that_bucket_and_predictions_follow()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var control = BackendControl.For(device);
        var id = (await _lens.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device))).Deployment.Id;
        await _lens.StartProfileAsync(device, id);
        Assert.Equal(ProfileState.Completed, (await WaitAsync(device, id)).State);
        var before = await SnapshotTextAsync(device, id);
        var predictionBefore = await _lens.PredictAsync(device, id, 200, 50);

        // The device's decode-256 steps get 1.5 times slower; only that bucket is profiled again.
        control.DecodeSlowdown[256] = 1.5;
        var run = await _lens.StartProfileAsync(device, id, "decode-256");
        Assert.Equal("decode-256", run.Bucket);
        var done = await WaitAsync(device, id);
        Assert.Equal(ProfileState.Completed, done.State);
        Assert.Equal(2, done.Total);

        var after = await SnapshotTextAsync(device, id);
        foreach (var (bucket, text) in before)
        {
            if (bucket == "decode-256")
            {
                Assert.NotEqual(text.Snapshot, after[bucket].Snapshot);
                Assert.NotEqual(text.Measurements, after[bucket].Measurements);
            }
            else
            {
                Assert.Equal(text.Snapshot, after[bucket].Snapshot);         // byte-identical
                Assert.Equal(text.Measurements, after[bucket].Measurements);
            }
        }

        var buckets = await _lens.GetBucketsAsync(device, id);
        var old = JsonSerializer.Deserialize<BucketSnapshot>(before["decode-256"].Snapshot, LensJson.Options)!;
        var now = buckets.Single(b => b.Bucket == "decode-256");
        Assert.Equal(old.Version + 1, now.Version);
        Assert.Equal(5.5 * 1.5, now.StepMs!.Value, 9);

        var expected = TestModels.Source(decode256Factor: 1.5);
        TestModels.AssertSameModel(expected, await _lens.GetModelJsonAsync(device, id));
        var predictionAfter = await _lens.PredictAsync(device, id, 200, 50);
        Assert.True(predictionAfter.ModelVersion > predictionBefore.ModelVersion);
        Assert.Equal(expected.Predict(200, 50).E2eMs, predictionAfter.E2eMs, 9);
        Assert.NotEqual(predictionBefore.E2eMs, predictionAfter.E2eMs);
    }

    [Fact]
    public async Task Transient_faults_are_retried_and_the_profile_completes()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        BackendControl.For(device).FailTransiently(3);
        var id = (await _lens.CreateDeploymentAsync(device, TestModels.Spec("llama", control: device))).Deployment.Id;
        await _lens.StartProfileAsync(device, id);
        var done = await WaitAsync(device, id);
        Assert.Equal(ProfileState.Completed, done.State);
        Assert.Equal(3, done.Retries);
        TestModels.AssertSameModel(TestModels.Source(), await _lens.GetModelJsonAsync(device, id));
    }

    [Fact]
    public async Task A_bucket_counts_each_measurement_id_once_and_replacement_bumps_its_version()
    {
        var spec = TestModels.Spec("llama");
        var key = new DeploymentKey("acme", "npu-" + Guid.NewGuid().ToString("N")[..8], spec.DeploymentId).Bucket(BucketId.Parse("decode-256"));
        var bucket = fixture.Client.GetGrain<IBucketGrain>(key.Format());
        var source = TestModels.Source();
        MeasurementRecord Record(string id, int o, double factor = 1) =>
            new(id, "decode-256", 129, o, source.Predict(129, o).E2eMs * factor, null, MeasurementSource.Import, DateTimeOffset.UnixEpoch);

        var first = await bucket.AddMeasurementsAsync(spec.Context, [Record("a", 1), Record("b", 127)]);
        Assert.Equal((2, 0, 1L), (first.Added, first.Duplicates, first.Snapshot.Version));
        Assert.Equal(5.5, first.Snapshot.StepMs!.Value, 9);
        var retried = await bucket.AddMeasurementsAsync(spec.Context, [Record("a", 1), Record("b", 127)]);
        Assert.Equal((0, 2, 1L, false), (retried.Added, retried.Duplicates, retried.Snapshot.Version, retried.FitChanged));
        Assert.Equal(2, (await bucket.GetMeasurementsAsync()).Length);

        var replaced = await bucket.ReplaceMeasurementsAsync(spec.Context, "r1", [Record("c", 1), Record("d", 100)]);
        Assert.Equal(2, replaced.Version);
        Assert.Equal(["c", "d"], (await bucket.GetMeasurementsAsync()).Select(m => m.Id));
        Assert.Equal(2, (await bucket.ReplaceMeasurementsAsync(spec.Context, "r1", [Record("e", 1)])).Version);

        var wrong = await Assert.ThrowsAsync<LensException>(() => bucket.AddMeasurementsAsync(spec.Context, [Record("x", 1) with { Bucket = "decode-512" }]));
        Assert.Equal(LensErrorKind.Validation, wrong.Kind);
        Assert.Equal(2, (await bucket.GetSnapshotAsync()).Version);
    }

    [Fact]
    public async Task Deployments_are_identified_by_their_configuration()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var first = await _lens.CreateDeploymentAsync(device, TestModels.Spec("llama"));
        var again = await _lens.CreateDeploymentAsync(device, TestModels.Spec("llama"));
        Assert.True(first.Created);
        Assert.False(again.Created);
        Assert.Equal(first.Deployment.Id, again.Deployment.Id);

        // A new SDK version is a new deployment; under the old name it is a conflict, never an overwrite.
        var conflict = await Assert.ThrowsAsync<LensException>(() => _lens.CreateDeploymentAsync(device, TestModels.Spec("llama", sdk: "2.20")));
        Assert.Equal(LensErrorKind.Conflict, conflict.Kind);
        var upgraded = await _lens.CreateDeploymentAsync(device, TestModels.Spec("llama-sdk220", sdk: "2.20"));
        Assert.NotEqual(first.Deployment.Id, upgraded.Deployment.Id);
        Assert.NotEqual(TestModels.Spec("x").IdentityHash, TestModels.Spec("x", sdk: "2.20").IdentityHash);
        Assert.Equal(2, (await _lens.ListDeploymentsAsync(device)).Length);
        Assert.Equal(TestModels.Spec("llama").Normalized(), (await _lens.GetDeploymentAsync(device, first.Deployment.Id)).Spec with
        {
            PrefillBuckets = TestModels.Spec("llama").PrefillBuckets,
            DecodeBuckets = TestModels.Spec("llama").DecodeBuckets,
        });
    }

    [Fact]
    public async Task A_scheduled_reprofile_tick_profiles_every_bucket_once()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var spec = TestModels.Spec("llama", control: device) with { ReprofileEveryMinutes = 60 * 24 };
        var id = (await _lens.CreateDeploymentAsync(device, spec)).Deployment.Id;
        Assert.Equal(ProfileState.None, (await _lens.GetProfileProgressAsync(device, id)).State);

        // Reminder ticks can repeat: a tick while a run is unfinished (held at its first measurement here) adds nothing.
        var control = BackendControl.For(device);
        control.PauseAfter = 0;
        var reminders = fixture.Client.GetGrain<IDeploymentGrain>(new DeploymentKey("acme", device, id).Format()).AsReference<IRemindable>();
        await reminders.ReceiveReminder("lens-reprofile", default);
        var first = await _lens.GetProfileProgressAsync(device, id);
        await TestModels.Until(() => Task.FromResult(control.Paused), "the first measurement");
        await reminders.ReceiveReminder("lens-reprofile", default);
        control.PauseAfter = null;
        var done = await WaitAsync(device, id);
        Assert.Equal(first.RunId, done.RunId);
        Assert.Equal(ProfileState.Completed, done.State);
        Assert.Equal(done.Total, BackendControl.For(device).Measured);

        var invalid = await Assert.ThrowsAsync<LensException>(() => _lens.CreateDeploymentAsync(device, spec with { Name = "x", ReprofileEveryMinutes = 0 }));
        Assert.Contains("reprofileEveryMinutes", invalid.Errors!.Keys);
    }

    [Fact]
    public async Task Another_tenant_cannot_see_a_deployment()
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var id = (await _lens.CreateDeploymentAsync(device, TestModels.Spec("llama"))).Deployment.Id;
        var other = new LensClusterClient(fixture.Client, "globex");
        var ex = await Assert.ThrowsAsync<LensException>(() => other.GetDeploymentAsync(device, id));
        Assert.Equal(LensErrorKind.NotFound, ex.Kind);
        Assert.Empty(await other.ListDeploymentsAsync(device));
    }

    private async Task<ProfileProgress> WaitAsync(string device, string id)
    {
        ProfileProgress progress = null!;
        await TestModels.Until(async () => (progress = await _lens.GetProfileProgressAsync(device, id)).IsFinished, "the profile to finish");
        return progress;
    }

    private async Task<Dictionary<string, (string Snapshot, string Measurements)>> SnapshotTextAsync(string device, string id)
    {
        var result = new Dictionary<string, (string, string)>();
        foreach (var snapshot in await _lens.GetBucketsAsync(device, id))
        {
            var measurements = await _lens.GetBucketMeasurementsAsync(device, id, snapshot.Bucket);
            result[snapshot.Bucket] = (JsonSerializer.Serialize(snapshot, LensJson.Options), JsonSerializer.Serialize(measurements, LensJson.Options));
        }

        return result;
    }
}
