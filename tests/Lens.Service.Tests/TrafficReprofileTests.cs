using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Grains;

namespace Lens.Service.Tests;

/// <summary>The HTTP test host with <c>Lens:Grains:ReprofileFlaggedCells</c> on: cells flagged by live traffic are re-profiled alone.</summary>
public sealed class ReprofilingHostFixture : HttpHostFixture
{
    protected override void ConfigureGrains(LensGrainOptions grains) => grains.ReprofileFlaggedCells = true;
}

/// <summary>
/// Issue 19's "re-profiled alone as a group when the operator allows profiling on that endpoint", over a real loopback server: a
/// cell the live-traffic monitor flags is re-profiled by a single-cell run of exactly its plan rows (groups of its batch) against the
/// deployment's backend, once per flag and never while another run is unfinished; its commit drops the cell's traffic estimate and
/// stale mark, and the served cost is the re-measured one. (The setting off: <see cref="OtlpTrafficTests"/>, which starts no run.)
/// </summary>
public sealed class TrafficReprofileTests(ReprofilingHostFixture fixture) : IClassFixture<ReprofilingHostFixture>
{
    private const int Window = OtlpTrafficTests.Window;

    private static readonly BucketId Slowed = new(BucketKind.Decode, 512, 4);

    [Fact]
    public async Task A_flagged_cell_is_reprofiled_alone_in_groups_of_its_batch_and_its_served_cost_becomes_the_measured_one()
    {
        var device = NewDevice();
        var truth = OtlpTrafficTests.Truth(c => c == Slowed ? 1.3 : 1); // what the device's backend serves now
        var (id, spec, profiled) = await DeploymentAsync(device, truth);
        var control = BackendControl.For(device);
        var observed = OtlpTrafficTests.Observe(truth, OtlpTrafficTests.Traffic(profiled, 0.6, 3 * Window, 11), 0.01, 12);

        await OtlpTrafficTests.SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, observed[..Window]);
        var first = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Empty(first.Flagged); // out of band once: not flagged yet, nothing re-profiled
        Assert.Null(first.LastReprofile);
        Assert.Equal(ProfileState.None, (await fixture.Acme.GetProfileProgressAsync(device, id)).State);

        // The window that flags the cell starts its run; the backend holds it, so that what precedes the commit can be seen.
        control.PauseAfter = 0;
        await OtlpTrafficTests.SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, observed[Window..(2 * Window)]);
        var second = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal([Slowed.ToString()], second.Flagged);
        var started = second.LastReprofile!;
        Assert.NotNull(started);
        Assert.Equal((Slowed.ToString(), Slowed.ToString()), (started.Cell, started.Bucket));
        var running = await fixture.Acme.GetProfileProgressAsync(device, id);
        Assert.Equal((started.RunId, Slowed.ToString()), (running.RunId, running.Bucket));
        Assert.False(running.IsFinished);
        Assert.Contains(second.Estimates ?? [], e => e.Cell == Slowed.ToString()); // the traffic's estimate holds until the run commits
        Assert.Equal([Slowed.ToString()], (await fixture.Acme.GetBucketsAsync(device, id)).Where(b => b.Stale).Select(b => b.Bucket));

        control.PauseAfter = null;
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var done = await fixture.Acme.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token);
        Assert.Equal((started.RunId, ProfileState.Completed), (done.RunId, done.State));

        // Exactly the cell's plan rows, each a group of 4 identical requests released together, and nothing else was measured.
        PlanRow[] plan = [.. spec.CreatePlan().RowsFor(Slowed)];
        Assert.All(plan, r => Assert.Equal(4, r.Batch));
        Assert.Equal(plan.Length, done.Total);
        Assert.Equal(plan.Length, control.Measured);
        var rows = await fixture.Acme.GetBucketMeasurementsAsync(device, id, Slowed.ToString());
        Assert.Equal(4 * plan.Length, rows.Length);
        Assert.All(rows, r => Assert.Equal((4, MeasurementSource.Profile), (r.Batch, r.Source)));
        Assert.Equal(plan.Select(r => (r.InputLength, r.OutputLength)).Order(),
            rows.GroupBy(r => r.Group).Select(g => Assert.Single(g.Select(r => (r.InputLength, r.OutputLength)).Distinct())).Order());

        // Its commit dropped the estimate and the stale mark: the served cost is the re-profiled one, within 10% of the slowed truth.
        var after = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Null(after.Estimates);
        Assert.Equal(started, after.LastReprofile); // the SDK reads it through the shared record: over HTTP (JSON) and Orleans alike
        Assert.Equal(started, (await new LensClusterClient(fixture.Server.Client, "acme").GetTrafficAsync(device, id)).LastReprofile);
        Assert.DoesNotContain(await fixture.Acme.GetBucketsAsync(device, id), b => b.Stale);
        var model = ModelJson.Deserialize(await fixture.Acme.GetModelJsonAsync(device, id), "served");
        Assert.Empty(model.Provenance);
        Assert.Equal(ModelProvenance.Profiled, model.SourceOf(Slowed));
        double Cost(DeploymentModel m) => m.StepMs(m.Buckets.BatchIndex(4), m.Buckets.DecodeIndex(512));
        Assert.InRange(Cost(profiled) / Cost(truth), 0.7, 0.8); // before: the unslowed profile
        Assert.InRange(Cost(model) / Cost(truth), 0.9, 1.1);

        // The health history names the cell in the window that started its re-profile; the metric counts it, tagged traffic.
        var history = await fixture.Acme.GetHealthHistoryAsync(device, id);
        Assert.Equal(new string?[] { null, Slowed.ToString() }, history.Entries.Select(e => e.Reprofiling));
        static string? Line(string metrics, string device) => metrics.Split('\n')
            .FirstOrDefault(l => l.StartsWith("lens_drift_reprofiles_total{", StringComparison.Ordinal) && l.Contains(device, StringComparison.Ordinal));
        var line = Line(await fixture.MetricsWhenAsync(t => Line(t, device) is not null, "the re-profile on /metrics"), device)!;
        Assert.Contains("lens_source=\"traffic\"", line, StringComparison.Ordinal);
        Assert.Contains($"lens_bucket=\"{Slowed}\"", line, StringComparison.Ordinal);

        // The next window, served by the re-profiled model, flags nothing and starts no run.
        await OtlpTrafficTests.SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, observed[(2 * Window)..]);
        var third = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal(3, third.Analyses);
        Assert.Empty(third.Flagged);
        Assert.Equal(started.RunId, (await fixture.Acme.GetProfileProgressAsync(device, id)).RunId);
        Assert.Equal(plan.Length, control.Measured);
    }

    [Fact]
    public async Task A_device_wide_slowdown_is_the_common_shift_and_reprofiles_nothing()
    {
        var device = NewDevice();
        var truth = OtlpTrafficTests.Truth(_ => 1.2);
        var (id, _, profiled) = await DeploymentAsync(device, truth);
        var observed = OtlpTrafficTests.Observe(truth, OtlpTrafficTests.Traffic(profiled, 0.6, 2 * Window, 31), 0, 32);
        await OtlpTrafficTests.SendAsync(fixture.Http, HttpHostFixture.AcmeKey, device, id, observed);

        var traffic = await fixture.Acme.GetTrafficAsync(device, id);
        Assert.Equal(2, traffic.Analyses);
        Assert.InRange(traffic.Latest!.CommonShift, 0.17, 0.23);
        Assert.Empty(traffic.Flagged);
        Assert.Null(traffic.LastReprofile);
        Assert.Equal(ProfileState.None, (await fixture.Acme.GetProfileProgressAsync(device, id)).State);
        Assert.Equal(0, BackendControl.For(device).Measured);
    }

    [Fact]
    public async Task Reprofiling_a_cell_checks_its_name_waits_for_an_unfinished_run_and_takes_a_prefill_bucket_through_its_decode_pair()
    {
        var device = NewDevice();
        var (id, _, _) = await DeploymentAsync(device, OtlpTrafficTests.Truth(_ => 1));
        var key = new DeploymentKey("acme", device, id);
        var grain = DeploymentGrains.Get(fixture.Server.Client, key);
        var control = BackendControl.For(device);

        // Hostile names: a cell not of the deployment is a validation error (400 over HTTP) naming it; nothing starts.
        foreach (var bad in new[] { "decode-512-b3", "decode-2048-b4", "prefill-999", "decode-512|x", new string('d', 500) })
        {
            var error = await Assert.ThrowsAsync<LensException>(() => grain.ReprofileCellAsync(bad));
            Assert.Equal(LensErrorKind.Validation, error.Kind);
            Assert.Contains(bad.Length > 64 ? bad[..64] : bad, error.Errors!["cell"][0], StringComparison.Ordinal);
        }

        Assert.Equal(ProfileState.None, (await grain.GetProfileProgressAsync()).State);

        // A run unfinished (here a profile of another bucket, held by the backend): nothing starts.
        control.PauseAfter = 0;
        var other = await fixture.Acme.StartProfileAsync(device, id, "decode-128-b2");
        Assert.Null(await grain.ReprofileCellAsync("prefill-256"));
        control.PauseAfter = null;
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            Assert.Equal(other.RunId, (await fixture.Acme.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token)).RunId);
        }

        // A prefill bucket with a traffic estimate and a stale mark: its run measures the batch-1 decode bucket whose intercept pair
        // (prompt 129, in 129..256) gives its cost, and that commit drops the prefill bucket's estimate and stale mark too.
        await grain.ApplyTrafficEstimatesAsync([new TrafficEstimateRecord("prefill-256", 99, 12, 500, 1.7e12, 1.7e12 + 1000, DateTimeOffset.UtcNow)]);
        await fixture.Server.Client.GetGrain<IBucketGrain>(key.BucketGrainKey("prefill-256")).SetStaleAsync(true);
        Assert.Equal("prefill-256", Assert.Single(await grain.GetTrafficEstimatesAsync()).Cell);
        var measured = control.Measured;
        var started = await grain.ReprofileCellAsync("prefill-256");
        Assert.NotNull(started);
        Assert.Equal("decode-256", started.Bucket);
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            var done = await fixture.Acme.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token);
            Assert.Equal((started.RunId, ProfileState.Completed), (done.RunId, done.State));
            Assert.Equal(done.Total, control.Measured - measured);
        }

        Assert.Empty(await grain.GetTrafficEstimatesAsync());
        Assert.DoesNotContain(await fixture.Acme.GetBucketsAsync(device, id), b => b.Stale);
        var model = ModelJson.Deserialize(await fixture.Acme.GetModelJsonAsync(device, id), "served");
        Assert.Equal(ModelProvenance.Profiled, model.SourceOf(new BucketId(BucketKind.Prefill, 256)));
    }

    /// <summary>
    /// A batched deployment profiled (by import) from the unslowed truth, whose backend, a replay under this test's
    /// <see cref="BackendControl"/>, serves <paramref name="device"/>'s model: what a re-profile measures.
    /// </summary>
    private async Task<(string Id, DeploymentSpec Spec, DeploymentModel Profiled)> DeploymentAsync(string device, DeploymentModel served)
    {
        var spec = TestModels.Spec("reprofiled") with
        {
            BatchBuckets = OtlpTrafficTests.Batch,
            Backend = new BackendSpec(BackendSpec.Replay, ModelName: device, ModelJson: ModelJson.Serialize(served)),
        };
        var (id, profiled) = await OtlpTrafficTests.BatchedDeploymentAsync(fixture.Acme, device, spec);
        return (id, spec, profiled);
    }

    private static string NewDevice() => "reprofile-" + Guid.NewGuid().ToString("N")[..8];
}
