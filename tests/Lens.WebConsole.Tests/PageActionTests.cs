using System.Globalization;
using Bunit;
using Lens.Abstractions;
using Lens.Client;
using Lens.WebConsole.Components.Pages;

namespace Lens.WebConsole.Tests;

/// <summary>
/// The console's pages against a real server (issue 17, items 2 and 12): the what-if page's run and advice are the predictor grain's
/// calls, with the grain's limits and results, and every action button is disabled until the page is live.
/// </summary>
public sealed class PageActionTests(PageHost host) : BunitContext, IClassFixture<PageHost>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private IRenderedComponent<WhatIfPage> WhatIf(bool interactive)
    {
        host.Serve(this, interactive);
        var cut = Render<WhatIfPage>();
        cut.WaitForElement($"#whatif-form input[data-deployment='{host.Deployment}']", Wait);
        return cut;
    }

    [Fact]
    public void A_workload_above_the_grain_s_limit_is_refused_on_the_page_with_the_grain_s_message()
    {
        var cut = WhatIf(interactive: true);
        cut.Find("#wi-count").Change((PageHost.MaxSimulateRequests + 30).ToString(CultureInfo.InvariantCulture));
        cut.Find("#whatif-form").Submit();

        var error = cut.WaitForElement("#whatif-error[role=alert]", Wait).TextContent;
        Assert.Equal($"{host.Deployment}: workload.count must be in 1..{PageHost.MaxSimulateRequests}; got 80", error);
        Assert.Empty(cut.FindAll("#whatif-results"));
        Assert.False(cut.Find("#run-whatif").HasAttribute("disabled")); // ready for the next try

        // The advisor's own checks answer the same way: K beyond the budget, as the grain words it.
        cut.Find("#adv-k").Change("33");
        cut.Find("#advise-form").Submit();
        Assert.Contains("outside 1..32", cut.WaitForElement("#advise-error[role=alert]", Wait).TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_page_s_result_is_the_http_route_s_result_for_the_same_workload()
    {
        var cut = WhatIf(interactive: true);
        cut.Find("#wi-rate").Change("3");
        cut.Find("#wi-count").Change("40");
        cut.Find("#wi-seed").Change("7");
        cut.Find("#wi-replicas").Change("2");
        cut.Find("#whatif-form").Submit();
        cut.WaitForElement("#whatif-results", Wait);

        // The same workload over HTTP: 3 requests/s, 40 requests, seed 7, lengths uniform over what P = 16..64, D = 16..128 serve.
        using var http = new HttpClient { BaseAddress = host.Server.HttpAddress };
        var api = new LensHttpClient(http, PageHost.Key);
        var report = await api.SimulateAsync(PageHost.Device, host.Deployment, new SimulateRequest(
            Workload: new WorkloadSpec(3, 40, InputDist: "uniform:1-64", OutputDist: "uniform:1-127", Seed: 7), Replicas: 2,
            SloTtftMs: 500, SloTpotMs: 50));
        Assert.Equal(40, report.Requests);

        string Cell(string row) => cut.Find($"#whatif-results tbody tr:has(th:contains('{row}')) td").TextContent;
        string Three(LatencySummary s) => $"{Format.Ms(s.P50)} / {Format.Ms(s.P90)} / {Format.Ms(s.P99)}";
        Assert.Equal("40", Cell("requests"));
        Assert.Equal(Three(report.Ttft), Cell("TTFT p50"));
        Assert.Equal(Three(report.Tpot), Cell("TPOT p50"));
        Assert.Equal(Three(report.E2e), Cell("E2E p50"));
        Assert.Equal(Format.Ms(report.QueueWait.P99), Cell("queue wait"));
        Assert.Equal(report.RequestsPerSecond.ToString("0.###", CultureInfo.InvariantCulture), Cell("throughput"));
        Assert.Equal(Format.Percent(report.Utilization), Cell("utilization"));
        Assert.Equal(Format.Percent(report.SloAttainment), Cell("SLO attainment"));
    }

    [Fact]
    public void What_if_buttons_are_disabled_until_the_page_is_live()
    {
        var cut = WhatIf(interactive: false); // prerendered: no handler would receive a click
        Assert.Equal("false", cut.Find("#console-ready").GetAttribute("data-interactive"));
        var buttons = cut.FindAll("button");
        Assert.Equal(["wi-show", "run-whatif", "run-advise"], buttons.Select(b => b.Id));
        Assert.All(buttons, b => Assert.True(b.HasAttribute("disabled"), $"#{b.Id} is enabled before the page is live"));
    }

    [Fact]
    public void What_if_buttons_work_once_the_page_is_live()
    {
        var cut = WhatIf(interactive: true);
        Assert.Equal("true", cut.Find("#console-ready").GetAttribute("data-interactive"));
        Assert.All(cut.FindAll("button"), b => Assert.False(b.HasAttribute("disabled"), $"#{b.Id} is disabled on a live page"));
        cut.Find("#wi-count").Change("20");
        cut.Find("#run-whatif").Click();
        cut.WaitForAssertion(() => Assert.Equal("20", cut.Find("#whatif-results tbody tr:first-child td").TextContent), Wait);
    }

    [Fact]
    public async Task Profile_buttons_are_disabled_until_the_deployment_page_is_live_and_start_a_run_after()
    {
        const string device = "npu-buttons";
        var id = await host.FittedAsync(device);
        host.Serve(this, interactive: false);
        var prerendered = Render<Deployment>(p => p.Add(d => d.Device, device).Add(d => d.Id, id));
        prerendered.WaitForElement("#profile-all", Wait);
        prerendered.WaitForElement("#breakdown", Wait);
        var buttons = prerendered.FindAll("button");
        Assert.Contains(buttons, b => b.GetAttribute("aria-label") == "Re-profile prefill-16");
        Assert.All(buttons, b => Assert.True(b.HasAttribute("disabled"), $"{b.Id}{b.GetAttribute("aria-label")} is enabled before the page is live"));
        await DisposeComponentsAsync();

        SetRendererInfo(new Microsoft.AspNetCore.Components.RendererInfo("Server", isInteractive: true));
        var live = Render<Deployment>(p => p.Add(d => d.Device, device).Add(d => d.Id, id));
        live.WaitForElement("#breakdown", Wait);
        Assert.All(live.FindAll("button"), b => Assert.False(b.HasAttribute("disabled"), $"{b.Id}{b.GetAttribute("aria-label")} is disabled on a live page"));
        live.Find("#profile-all").Click();
        live.WaitForElement("#profile-state[data-state=queued], #profile-state[data-state=running], #profile-state[data-state=completed]", Wait);
        Assert.True(live.Find("#profile-all").HasAttribute("disabled") || live.Find("#profile-state").GetAttribute("data-state") == "completed");
    }
}
