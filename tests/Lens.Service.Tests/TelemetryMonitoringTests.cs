using System.Diagnostics;
using System.Net;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Measurement;
using Lens.Silo;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Lens.Service.Tests;

/// <summary>
/// Telemetry-driven monitoring over real parts (silo, HTTP API, replayed device): observations are compared with the model, one
/// drifting decode bucket is found, marked stale and re-profiled alone; a stable device raises nothing; metrics and traces are
/// really exported. Observations are generated from the replayed device with seeded one-sided noise, so every run is the same.
/// </summary>
public sealed class TelemetryMonitoringTests(HttpHostFixture fixture, ITestOutputHelper output) : IClassFixture<HttpHostFixture>
{
    private const int BatchSize = 100;
    private readonly LensHttpClient _acme = fixture.Acme;

    [Fact]
    public async Task One_slowed_decode_bucket_is_detected_marked_stale_and_reprofiled_alone()
    {
        var device = NewDevice();
        var id = await ProfiledDeploymentAsync(device);
        var before = await _acme.GetBucketsAsync(device, id);

        // The device slows down in one decode bucket: the profiling backend and production alike.
        var control = BackendControl.For(device);
        control.DecodeSlowdown[256] = 1.3;
        control.PauseAfter = control.Measured; // hold the re-profile at its first measurement, to see the bucket stale
        var slowed = new Traffic(TestModels.Source(decode256Factor: 1.3), noise: 0.01, seed: 7);
        var heldOut = new Traffic(TestModels.Source(decode256Factor: 1.3), noise: 0.01, seed: 99).Next(300);
        var staleMape = await MapeAsync(device, id, heldOut, refined: false);

        IntakeResult? triggered = null;
        var batches = 0;
        var refinedMape = double.NaN;
        while (triggered is null && batches < 10)
        {
            var result = await _acme.ReportTelemetryAsync(device, id, new MeasurementBatch(slowed.Next(BatchSize), $"slow{batches}"));
            batches++;
            Assert.All(result.Drifting ?? [], b => Assert.Equal("decode-256", b)); // that bucket, and only it
            if (batches == 1)
            {
                Assert.Equal(["decode-256"], result.Drifting ?? []);
                Assert.Null(result.Reprofiling);
                refinedMape = await MapeAsync(device, id, heldOut, refined: true);
            }

            if (result.Reprofiling is not null)
            {
                triggered = result;
            }
        }

        // K = 3 consecutive analyses: the third batch starts the re-profile, of decode-256 alone.
        Assert.NotNull(triggered);
        Assert.Equal(3, batches);
        Assert.Equal("decode-256", triggered.Reprofiling);
        await TestModels.Until(() => Task.FromResult(control.Paused), "the re-profile to start");
        var during = await _acme.GetHealthAsync(device, id);
        Assert.Equal("decode-256", during.Profile.Bucket);
        Assert.Equal(["decode-256"], during.Buckets.Where(b => b.Stale).Select(b => b.Bucket));
        Assert.Equal(["decode-256"], during.Buckets.Where(b => b.Drifting).Select(b => b.Bucket));
        Assert.Equal(3, Assert.Single(during.Buckets, b => b.Bucket == "decode-256").ConsecutiveDrift);
        Assert.InRange(Assert.Single(during.Buckets, b => b.Bucket == "decode-256").Shift!.Value, 0.2, 0.4); // about the 30% slowdown
        control.PauseAfter = null;
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var done = await _acme.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(20), wait.Token);
        Assert.Equal(ProfileState.Completed, done.State);
        Assert.Equal("decode-256", done.Bucket);

        var after = await _acme.GetBucketsAsync(device, id);
        foreach (var (old, now) in before.Zip(after))
        {
            if (now.Bucket == "decode-256")
            {
                Assert.True(now.Version > old.Version);
                Assert.False(now.Stale);
                Assert.Null(now.Drift); // its count restarts with the new fit
                Assert.Equal(5.5 * 1.3, now.StepMs!.Value, 9);
            }
            else
            {
                Assert.Equal((old.Version, old.StepMs, old.LastProfiled), (now.Version, now.StepMs, now.LastProfiled));
            }
        }

        // Fresh observations from the slowed device: the error is back below the goal, and nothing drifts any more.
        var fresh = new Traffic(TestModels.Source(decode256Factor: 1.3), noise: 0.01, seed: 1234).Next(300);
        var repairedMape = await MapeAsync(device, id, fresh, refined: false);
        var repairedRefinedMape = await MapeAsync(device, id, fresh, refined: true);
        Assert.True(repairedMape < 2, $"MAPE after the re-profile {repairedMape:F2}%");
        for (var i = 0; i < 3; i++)
        {
            var result = await _acme.ReportTelemetryAsync(device, id, new MeasurementBatch(slowed.Next(BatchSize), $"after{i}"));
            Assert.Empty(result.Drifting ?? []);
            Assert.Null(result.Reprofiling);
        }

        var health = await _acme.GetHealthAsync(device, id);
        var repaired = Assert.Single(health.Buckets, b => b.Bucket == "decode-256");
        Assert.Equal((false, 0, false), (repaired.Drifting, repaired.ConsecutiveDrift, repaired.Stale));
        Assert.True(repaired.Observations > 0);
        Assert.All(health.Buckets, b => Assert.False(b.Drifting));

        // The history holds the newest 5 of the 6 analyses (the fixture's HealthHistoryLength), oldest first: decode-256's drift count
        // climbing to K, then reset by its re-profile; no other bucket ever flagged.
        var history = await _acme.GetHealthHistoryAsync(device, id);
        Assert.Equal(5, history.Entries.Length);
        var slot = Array.IndexOf(history.Buckets, "decode-256");
        Assert.Equal([2, 3, 0, 0, 0], history.Entries.Select(e => e.ConsecutiveDrift[slot]));
        Assert.All(history.Entries, e => Assert.Equal(e.ConsecutiveDrift[slot] > 0 ? 1 : 0, e.Drifting));
        Assert.All(history.Entries, e => Assert.Equal(0, e.ConsecutiveDrift.Where((_, b) => b != slot).Sum()));
        Assert.InRange(history.Entries[1].Shift[slot]!.Value - history.Entries[1].CommonShift, 0.2, 0.4);
        Assert.Equal(health.AnalyzedAt, history.Entries[^1].At);

        output.WriteLine($"held-out E2E MAPE, profile before the slowdown: {staleMape:F2}%; refined with one batch of telemetry: " +
                         $"{refinedMape:F2}%; after the drift-triggered re-profile of decode-256 (batch {batches}): {repairedMape:F2}% " +
                         $"(refined: {repairedRefinedMape:F2}%)");
        Assert.True(staleMape > 2, $"the slowdown should push the error above the 2% goal: {staleMape:F2}%");
        Assert.True(refinedMape < staleMape, $"refinement should lower the error on a drifted device: {refinedMape:F2}% vs {staleMape:F2}%");
    }

    [Fact]
    public async Task A_stable_device_raises_no_drift_over_2000_observations()
    {
        var device = NewDevice();
        var id = await ProfiledDeploymentAsync(device);
        var stable = new Traffic(TestModels.Source(), noise: 0.02, seed: 11);
        for (var i = 0; i < 20; i++)
        {
            var result = await _acme.ReportTelemetryAsync(device, id, new MeasurementBatch(stable.Next(BatchSize), $"stable{i}"));
            Assert.Empty(result.Drifting ?? []);
            Assert.Null(result.Reprofiling);
        }

        var health = await _acme.GetHealthAsync(device, id);
        Assert.Equal(1000, health.WindowObservations); // the window is bounded (DriftWindow)
        Assert.Equal(20, health.Analyses);
        Assert.InRange(health.CommonShift, 0, 0.02); // one-sided noise of up to 2%: about 1% slower than the min-statistic profile
        Assert.All(health.Buckets, b => Assert.Equal((false, 0, false), (b.Drifting, b.ConsecutiveDrift, b.Stale)));
        Assert.All(health.Buckets.Where(b => b.Bucket.StartsWith("decode", StringComparison.Ordinal)), b => Assert.True(b.Observations >= 20));
        Assert.Equal(ProfileState.Completed, health.Profile.State);
        Assert.Null(health.Profile.Bucket); // still the first full profile: nothing was re-profiled
        output.WriteLine($"stable device: common shift {health.CommonShift:P2}; per-bucket observed MAPE " +
                         string.Join(", ", health.Buckets.Select(b => $"{b.Bucket} {b.MeanApe:F2}%")));
    }

    [Fact]
    public async Task Metrics_are_exported_on_the_prometheus_endpoint()
    {
        var device = NewDevice();
        var id = await ProfiledDeploymentAsync(device);
        await _acme.PredictAsync(device, id, 100, 10);
        await _acme.ReportTelemetryAsync(device, id, new MeasurementBatch(new Traffic(TestModels.Source(), 0.01, 3).Next(50), "m1"));

        // The exporter caches a scrape briefly; poll (bounded) until this test's values are in.
        var text = await fixture.MetricsWhenAsync(t => t.Contains(device, StringComparison.Ordinal), "this test's metrics on /metrics");

        foreach (var name in new[]
                 {
                     "lens_predictions_total", "lens_prediction_duration_seconds_bucket", "lens_profile_measurements_total",
                     "lens_profile_device_time_seconds_total", "lens_telemetry_observations_total", "lens_telemetry_error",
                 })
        {
            Assert.Contains(name, text, StringComparison.Ordinal);
        }

        var observed = text.Split('\n').Where(l => l.StartsWith("lens_telemetry_observations_total", StringComparison.Ordinal) &&
                                                  l.Contains(device, StringComparison.Ordinal)).ToArray();
        var line = Assert.Single(observed);
        Assert.Equal(50, double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains("lens_bucket=\"decode-", text, StringComparison.Ordinal);
        Assert.Contains("orleans_", text, StringComparison.Ordinal); // Orleans' own meter
        output.WriteLine(string.Join("\n", text.Split('\n').Where(l => l.StartsWith("# TYPE lens", StringComparison.Ordinal))));
    }

    [Fact]
    public async Task An_http_request_and_its_grain_calls_form_one_trace()
    {
        var device = NewDevice();
        var id = await ProfiledDeploymentAsync(device);
        var seen = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal) ||
                                  s.Name.StartsWith("Microsoft.Orleans", StringComparison.Ordinal),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                lock (seen)
                {
                    seen.Add(a);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        await _acme.PredictAsync(device, id, 100, 10);
        Activity? server = null;
        await TestModels.Until(() =>
        {
            lock (seen)
            {
                server = seen.FirstOrDefault(a => a.Source.Name.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal) &&
                                                  a.DisplayName.Contains("predict", StringComparison.Ordinal));
            }

            return Task.FromResult(server is not null);
        }, "the HTTP server span", seconds: 10);

        lock (seen)
        {
            var grainSpans = seen.Where(a => a.Source.Name.StartsWith("Microsoft.Orleans", StringComparison.Ordinal) && a.TraceId == server!.TraceId)
                .Select(a => a.DisplayName).ToArray();
            Assert.Contains(grainSpans, n => n.Contains("IPredictorGrain", StringComparison.Ordinal));
            Assert.Contains(grainSpans, n => n.Contains("IDeploymentGrain", StringComparison.Ordinal)); // the predictor's call on, same trace
        }
    }

    [Fact]
    public async Task An_orleans_client_with_lens_telemetry_reads_health_and_joins_the_trace()
    {
        var device = NewDevice();
        var id = await ProfiledDeploymentAsync(device);
        await _acme.ReportTelemetryAsync(device, id, new MeasurementBatch(new Traffic(TestModels.Source(), 0.01, 5).Next(40), "c1"));

        var silo = fixture.Server.Services.GetRequiredService<LensServerOptions>();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLensTelemetry();
        builder.UseOrleansClient(c => c.UseLocalhostClustering(silo.GatewayPort, silo.ServiceId, silo.ClusterId).UseLensTelemetry());
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var lens = new LensClusterClient(host.Services.GetRequiredService<IClusterClient>(), "acme");
            var seen = new List<Activity>();
            using var listener = new ActivityListener
            {
                ShouldListenTo = s => s.Name is "Lens.Tests" || s.Name.StartsWith("Microsoft.Orleans", StringComparison.Ordinal),
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = a =>
                {
                    lock (seen)
                    {
                        seen.Add(a);
                    }
                },
            };
            ActivitySource.AddActivityListener(listener);
            using var source = new ActivitySource("Lens.Tests");
            DeploymentHealth health;
            ActivityTraceId trace;
            using (var span = source.StartActivity("caller"))
            {
                trace = span!.TraceId;
                health = await lens.GetHealthAsync(device, id);
            }

            lock (seen)
            {
                // The silo's side of the call (a server span) carries the caller's trace: propagated through the grain call.
                Assert.Contains(seen, a => a.TraceId == trace && a.Kind == ActivityKind.Server &&
                                           a.DisplayName.Contains("IDeploymentGrain", StringComparison.Ordinal));
            }

            Assert.Equal(id, health.DeploymentId);
            Assert.Equal(1, health.Analyses);
            Assert.Equal(40, health.WindowObservations);
            Assert.Contains(health.Buckets, b => b.Observations > 0);
            Assert.True((await lens.PredictAsync(device, id, 100, 10, refined: true)).E2eMs > 0);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task The_orleans_dashboard_is_mounted_when_asked()
    {
        var options = new LensServerOptions
        {
            SiloPort = TestModels.FreePort(),
            GatewayPort = TestModels.FreePort(),
            HttpPort = 0,
            ServiceId = "lens-dash-" + Guid.NewGuid().ToString("N")[..8],
            Tenants = { ["acme"] = HttpHostFixture.AcmeKey },
            DashboardPath = "/dashboard",
            MetricsPath = null,
            OperatorApiKey = HttpHostFixture.OperatorKey,
        };
        await using var server = await LensHost.StartAsync(options, b => b.Logging.SetMinimumLevel(LogLevel.Warning).QuietExpected());
        using var http = new HttpClient { BaseAddress = server.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        using (var anonymous = await http.GetAsync("dashboard/"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode); // it shows every tenant's grains
        }

        http.DefaultRequestHeaders.Add("X-Api-Key", HttpHostFixture.OperatorKey);
        using var page = await http.GetAsync("dashboard/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        using var metrics = await http.GetAsync("metrics");
        Assert.Equal(HttpStatusCode.NotFound, metrics.StatusCode); // switched off
    }

    [Fact]
    public async Task Health_history_grows_with_each_analysis_is_capped_oldest_first_and_only_the_tenant_s()
    {
        var device = NewDevice();
        var id = await ProfiledDeploymentAsync(device);
        var empty = await _acme.GetHealthHistoryAsync(device, id);
        Assert.Equal((id, 5, 3), (empty.DeploymentId, empty.Capacity, empty.ConsecutiveRequired));
        Assert.Equal((await _acme.GetBucketsAsync(device, id)).Select(b => b.Bucket), empty.Buckets);
        Assert.Empty(empty.Entries);

        var stable = new Traffic(TestModels.Source(), noise: 0.02, seed: 5);
        var seen = new List<HealthHistoryEntry>();
        for (var k = 1; k <= 7; k++)
        {
            await _acme.ReportTelemetryAsync(device, id, new MeasurementBatch(stable.Next(50), $"h{k}"));
            var history = await _acme.GetHealthHistoryAsync(device, id);
            Assert.Equal(Math.Min(k, 5), history.Entries.Length);
            var health = await _acme.GetHealthAsync(device, id);
            var newest = history.Entries[^1];
            Assert.Equal(health.AnalyzedAt, newest.At);
            Assert.Equal(health.CommonShift, newest.CommonShift, 4);
            foreach (var (b, i) in health.Buckets.Select((b, i) => (b, i)))
            {
                Assert.Equal(b.Observations, newest.Observations[i]);
                Assert.Equal(b.ConsecutiveDrift, newest.ConsecutiveDrift[i]);
                Assert.Equal(b.Observations > 0 ? b.Shift : null, newest.Shift[i], new ToleranceComparer(1e-4));
            }

            if (k > 1)
            {
                Assert.Equal(Json(seen[^Math.Min(k - 1, 4)..]), Json(history.Entries[..^1][^Math.Min(k - 1, 4)..])); // the older ones unchanged
            }

            seen.Add(newest);
        }

        var all = await _acme.GetHealthHistoryAsync(device, id);
        Assert.Equal(Json(seen[^5..]), Json(all.Entries)); // analyses 3..7, oldest first
        Assert.True(all.Entries.Zip(all.Entries.Skip(1)).All(p => p.First.At <= p.Second.At));
        Assert.Equal(Enumerable.Range(1, 5).Select(n => 50 * (n + 2)), all.Entries.Select(e => e.Observations.Where((_, b) => all.Buckets[b].StartsWith("prefill", StringComparison.Ordinal)).Sum()));
        Assert.Equal(Json(all.Entries[^2..]), Json((await _acme.GetHealthHistoryAsync(device, id, last: 2)).Entries));
        Assert.Empty((await _acme.GetHealthHistoryAsync(device, id, last: 0)).Entries);

        foreach (var bad in new[] { "-1", "abc", "10001", "1.5" })
        {
            using var response = await Send($"v1/devices/{device}/deployments/{id}/health/history?last={bad}", HttpHostFixture.AcmeKey);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("last", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var other = await Send($"v1/devices/{device}/deployments/{id}/health/history", HttpHostFixture.GlobexKey))
        {
            Assert.Equal(HttpStatusCode.NotFound, other.StatusCode); // another tenant's deployment does not exist for it
        }

        var unknown = await Assert.ThrowsAsync<LensApiException>(() => _acme.GetHealthHistoryAsync(device, "nope-0123456789"));
        Assert.Equal(404, unknown.Status);
        Assert.Equal(404, (await Assert.ThrowsAsync<LensApiException>(() => fixture.Globex.GetHealthHistoryAsync(device, id))).Status);
    }

    [Fact]
    public async Task Telemetry_before_any_profile_waits_in_the_window_and_is_judged_once_the_model_exists()
    {
        var device = NewDevice();
        var id = (await _acme.CreateDeploymentAsync(device, TestModels.Spec("early", control: device))).Id;
        var traffic = new Traffic(TestModels.Source(), 0.01, 21);
        var early = await _acme.ReportTelemetryAsync(device, id, new MeasurementBatch(traffic.Next(30), "early"));
        Assert.Equal(30, early.Added);
        Assert.Empty(early.Drifting ?? []);
        var unfitted = await _acme.GetHealthAsync(device, id);
        Assert.Equal((30, 0L), (unfitted.WindowObservations, unfitted.Analyses));
        Assert.All(unfitted.Buckets, b => Assert.Equal(0, b.Observations));
        Assert.Empty((await _acme.GetHealthHistoryAsync(device, id)).Entries); // nothing analysed: nothing in the history

        await _acme.StartProfileAsync(device, id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Assert.Equal(ProfileState.Completed, (await _acme.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(20), wait.Token)).State);
        await _acme.ReportTelemetryAsync(device, id, new MeasurementBatch(traffic.Next(30), "later"));
        var judged = await _acme.GetHealthAsync(device, id);
        Assert.Equal((60, 1L), (judged.WindowObservations, judged.Analyses));
        Assert.Equal(judged.AnalyzedAt, Assert.Single((await _acme.GetHealthHistoryAsync(device, id)).Entries).At);
        Assert.Equal(60, judged.Buckets.Where(b => b.Bucket.StartsWith("prefill", StringComparison.Ordinal)).Sum(b => b.Observations));
    }

    [Fact]
    public async Task Telemetry_settings_are_checked_when_the_server_is_built()
    {
        LensServerOptions Options() => new() { Tenants = { ["acme"] = HttpHostFixture.AcmeKey }, HttpPort = 0 };
        var bad = Options();
        bad.OtlpEndpoint = "collector:4317";
        bad.MetricsPath = "metrics";
        var ex = Assert.Throws<LensConfigurationException>(() => LensHost.Build(bad));
        Assert.Contains("Lens:OtlpEndpoint", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Lens:MetricsPath", ex.Message, StringComparison.Ordinal);

        var longHistory = Options();
        longHistory.Grains.HealthHistoryLength = DeploymentHealthHistory.MaxLast + 1;
        Assert.Contains("Lens:Grains:HealthHistoryLength", Assert.Throws<LensConfigurationException>(() => LensHost.Build(longHistory)).Message,
            StringComparison.Ordinal);

        var good = Options();
        good.OtlpEndpoint = "http://127.0.0.1:4317";
        await using var app = LensHost.Build(good); // built, never started: nothing is exported or listened on
        Assert.NotNull(app.Services.GetService<OpenTelemetry.Metrics.MeterProvider>());
    }

    private async Task<string> ProfiledDeploymentAsync(string device)
    {
        var id = (await _acme.CreateDeploymentAsync(device, TestModels.Spec("mon", control: device))).Id;
        await _acme.StartProfileAsync(device, id);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Assert.Equal(ProfileState.Completed, (await _acme.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(20), wait.Token)).State);
        return id;
    }

    /// <summary>E2E MAPE (percent) of the served predictions against <paramref name="observed"/>.</summary>
    private async Task<double> MapeAsync(string device, string id, MeasurementInput[] observed, bool refined)
    {
        var p = await _acme.PredictManyAsync(device, id, [.. observed.Select(o => o.InputLength)], [.. observed.Select(o => o.OutputLength)],
            refined: refined);
        return observed.Select((o, i) => Math.Abs(p.E2eMs[i] - o.E2eMs) / o.E2eMs * 100).Average();
    }

    private async Task<HttpResponseMessage> Send(string path, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("X-Api-Key", key);
        return await fixture.Http.SendAsync(request);
    }

    private static string Json<T>(T value) => System.Text.Json.JsonSerializer.Serialize(value, LensJson.Options);

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double?>
    {
        public bool Equals(double? x, double? y) => x is null ? y is null : y is not null && Math.Abs(x.Value - y.Value) <= tolerance;

        public int GetHashCode(double? obj) => 0;
    }

    private static string NewDevice() => "mon-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Production traffic on a replayed device: seeded request lengths across the whole range, seeded one-sided noise.</summary>
    private sealed class Traffic(DeploymentModel device, double noise, int seed)
    {
        private readonly Random _lengths = new(seed);
        private readonly ModelReplayBackend _backend = new(device, noise, seed + 1);

        public MeasurementInput[] Next(int count)
        {
            var max = device.Buckets.MaxSequence;
            var longestPrompt = device.Buckets.Prefill[^1];
            var batch = new MeasurementInput[count];
            for (var i = 0; i < count; i++)
            {
                var input = _lengths.Next(1, longestPrompt + 1);
                var output = _lengths.Next(1, max - input + 1);
                var timed = _backend.MeasureAsync(input, output).GetAwaiter().GetResult();
                batch[i] = new MeasurementInput(input, output, timed.E2eMs, timed.TtftMs);
            }

            return batch;
        }
    }
}
