using System.Diagnostics.Metrics;
using System.Net;
using Lens.Abstractions;
using Lens.Client;
using Lens.Grains;
using Microsoft.Extensions.DependencyInjection;

namespace Lens.Service.Tests;

/// <summary>
/// Heavy calls (simulate, advise, what-if) under a per-tenant budget and on the silo's own heavy-work threads (issue 17, item 15):
/// one tenant's flood must neither fill the silo nor stall predictions. No wall-clock assertion: the heavy thread is held by the test
/// (a gate) where an exact state is needed, and otherwise predictions are counted while the heavy threads are all busy.
/// </summary>
public sealed class HeavyCallBudgetTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Past_its_budget_a_tenant_gets_429_with_retry_after_while_another_tenants_heavy_call_succeeds()
    {
        var options = SecureHost.Options(o =>
        {
            o.Grains.HeavyWorkers = 1;
            o.Grains.MaxHeavyCallsPerTenant = 2;
            o.Grains.MaxHeavyCallsPerSilo = 3;
        });
        await using var server = await SecureHost.StartAsync(options);
        using var http = new HttpClient { BaseAddress = server.HttpAddress, Timeout = Patience };
        // Sent once: the SDK's default retry would wait out a 429's Retry-After and try again.
        var (acme, globex) = (Client(http, HttpHostFixture.AcmeKey), Client(http, HttpHostFixture.GlobexKey));
        var (acmeDevice, acmeId) = await ProfiledAsync(acme);
        var (globexDevice, globexId) = await ProfiledAsync(globex);
        var budget = server.Services.GetRequiredService<HeavyWorkBudget>();
        var scheduler = server.Services.GetRequiredService<HeavyWorkScheduler>();
        using var refusals = new RefusalCounter();

        // The one heavy thread held: admitted calls wait in its queue, so what is admitted and what is refused is exact.
        using var gate = new ManualResetEventSlim();
        var held = scheduler.RunAsync(() => gate.Wait(Patience));
        var small = new SimulateRequest(Workload: new WorkloadSpec(20, 50, InputDist: "uniform:1-300", OutputDist: "uniform:1-200"));
        var admitted = new List<Task<SimulationReport>> { acme.SimulateAsync(acmeDevice, acmeId, small), acme.SimulateAsync(acmeDevice, acmeId, small) };
        await TestModels.Until(() => Task.FromResult(budget.InFlight == 2), "acme's two heavy calls to be admitted");

        using var third = SecureHost.Request(HttpMethod.Post, $"/v1/devices/{acmeDevice}/deployments/{acmeId}/simulate");
        third.Content = JsonContent(small);
        using var refused = await http.SendAsync(third);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.True(refused.Headers.RetryAfter?.Delta is { TotalSeconds: >= 1 }, "a 429 says when to retry");
        var body = await refused.Content.ReadAsStringAsync();
        Assert.Contains("MaxHeavyCallsPerTenant", body, StringComparison.Ordinal);
        Assert.Contains("application/problem+json", refused.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        var advise = await Assert.ThrowsAsync<LensApiException>(() => acme.AdviseAsync(acmeDevice, acmeId, new AdviseRequest(Workload: small.Workload)));
        Assert.Equal(429, advise.Status);
        var whatIf = await Assert.ThrowsAsync<LensApiException>(() => acme.WhatIfAsync(acmeDevice, acmeId, new WhatIfRequest([128, 512], [512, 1024])));
        Assert.Equal(429, whatIf.Status);

        // The same budget holds for callers that reach the grains without the HTTP API (the web console, an Orleans client).
        var cluster = new LensClusterClient(server.Services.GetRequiredService<IClusterClient>(), "acme");
        var direct = await Assert.ThrowsAsync<LensException>(() => cluster.SimulateAsync(acmeDevice, acmeId, small));
        Assert.Equal(LensErrorKind.TooManyRequests, direct.Kind);
        Assert.Contains("MaxHeavyCallsPerTenant", direct.Message, StringComparison.Ordinal);

        // The tenant's predictions are not heavy: answered while its heavy calls wait (the predictor interleaves them).
        Assert.True((await acme.PredictAsync(acmeDevice, acmeId, 200, 100)).E2eMs > 0);

        // Another tenant's heavy call is admitted within its own budget; the silo's bound then refuses one more.
        admitted.Add(globex.SimulateAsync(globexDevice, globexId, small));
        await TestModels.Until(() => Task.FromResult(budget.InFlight == 3), "globex's heavy call to be admitted");
        var full = await Assert.ThrowsAsync<LensApiException>(() => globex.SimulateAsync(globexDevice, globexId, small));
        Assert.Equal(429, full.Status);
        Assert.Contains("MaxHeavyCallsPerSilo", full.Detail, StringComparison.Ordinal);
        Assert.Equal(4, refusals.Of("tenant"));
        Assert.Equal(1, refusals.Of("silo"));
        Assert.All(admitted, t => Assert.False(t.IsCompleted));

        gate.Set();
        await held;
        foreach (var report in await Task.WhenAll(admitted).WaitAsync(Patience))
        {
            Assert.Equal(50, report.Requests);
        }

        Assert.Equal(0, budget.InFlight);
        // The gate and the three simulations, all on the heavy thread (counted just after each answers).
        await TestModels.Until(() => Task.FromResult(scheduler.Completed == 4), "the heavy thread to count four items");
        Assert.Equal(50, (await acme.SimulateAsync(acmeDevice, acmeId, small)).Requests); // the budget is free again
    }

    [Fact]
    public async Task Predictions_keep_being_answered_while_one_tenant_floods_heavy_calls()
    {
        var options = SecureHost.Options(o =>
        {
            o.Grains.HeavyWorkers = 1;
            o.Grains.MaxHeavyCallsPerTenant = 8;
        });
        await using var server = await SecureHost.StartAsync(options);
        using var http = new HttpClient { BaseAddress = server.HttpAddress, Timeout = TimeSpan.FromMinutes(5) };
        var (acme, globex) = (new LensHttpClient(http, HttpHostFixture.AcmeKey), new LensHttpClient(http, HttpHostFixture.GlobexKey));
        var (acmeDevice, acmeId) = await ProfiledAsync(acme);
        var (globexDevice, globexId) = await ProfiledAsync(globex);
        var scheduler = server.Services.GetRequiredService<HeavyWorkScheduler>();
        await globex.PredictAsync(globexDevice, globexId, 200, 100); // the model cached, the predictor active

        // Eight real simulations at once from one tenant: the one heavy thread runs them in turn, for as long as they take.
        var heavy = new SimulateRequest(Workload: new WorkloadSpec(50, 100_000, InputDist: "uniform:1-300", OutputDist: "uniform:1-200"));
        var flood = Task.WhenAll(Enumerable.Range(0, 8).Select(_ => acme.SimulateAsync(acmeDevice, acmeId, heavy)));
        await TestModels.Until(() => Task.FromResult(scheduler.Running == scheduler.Workers || flood.IsCompleted), "the heavy thread to be busy");

        var (answered, whileSaturated) = (0, 0);
        while (!flood.IsCompleted)
        {
            var p = await globex.PredictAsync(globexDevice, globexId, 200 + (answered % 50), 100); // a non-200 answer throws
            Assert.True(p.E2eMs > 0);
            answered++;
            if (scheduler.Running == scheduler.Workers && scheduler.Queued > 0)
            {
                whileSaturated++; // answered with the heavy thread busy and more heavy work waiting for it
            }
        }

        Assert.All(await flood, r => Assert.Equal(100_000, r.Requests));
        // The simulations ran on the heavy thread, not on the threads that answer predictions.
        await TestModels.Until(() => Task.FromResult(scheduler.Completed == 8), "the heavy thread to count eight simulations");
        Assert.True(whileSaturated >= 20, $"only {whileSaturated} of {answered} predictions were answered while the heavy thread was saturated");
    }

    private static async Task<(string Device, string Id)> ProfiledAsync(LensHttpClient client)
    {
        var device = "npu-" + Guid.NewGuid().ToString("N")[..8];
        var id = (await client.CreateDeploymentAsync(device, TestModels.Spec("llama"))).Id;
        await client.StartProfileAsync(device, id);
        using var wait = new CancellationTokenSource(Patience);
        Assert.Equal(ProfileState.Completed, (await client.WaitForProfileAsync(device, id, TimeSpan.FromMilliseconds(50), wait.Token)).State);
        return (device, id);
    }

    private static LensHttpClient Client(HttpClient http, string key) =>
        new(http, key) { Retry = Polly.ResiliencePipeline<HttpResponseMessage>.Empty };

    private static StringContent JsonContent<T>(T value) =>
        new(System.Text.Json.JsonSerializer.Serialize(value, LensJson.Options), System.Text.Encoding.UTF8, "application/json");

    /// <summary>Counts <c>lens.heavy.refusals</c> by reason, in this process (tests run one at a time).</summary>
    private sealed class RefusalCounter : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Dictionary<string, long> _counts = [];

        public RefusalCounter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == LensTelemetry.Name && instrument.Name == "lens.heavy.refusals")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == LensTelemetry.ReasonTag)
                    {
                        lock (_counts)
                        {
                            _counts[(string)tag.Value!] = _counts.GetValueOrDefault((string)tag.Value!) + value;
                        }
                    }
                }
            });
            _listener.Start();
        }

        public long Of(string reason)
        {
            lock (_counts)
            {
                return _counts.GetValueOrDefault(reason);
            }
        }

        public void Dispose() => _listener.Dispose();
    }
}
