using System.Globalization;
using Bunit;
using Lens.Abstractions;
using Lens.Client;
using Lens.WebConsole.Components.Pages;

namespace Lens.WebConsole.Tests;

/// <summary>
/// The capacity page against a real server (issue 20, "Everywhere users look"): it lists the tenant's profiled deployments of every
/// device, its plan is the predictor grain's (the same as <c>POST /v1/capacity</c> for the same question), the grain's refusals are
/// shown on the page, and its button is disabled until the page is live.
/// </summary>
public sealed class CapacityPageTests(PageHost host) : BunitContext, IClassFixture<PageHost>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private IRenderedComponent<CapacityPage> Page(bool interactive, string candidate)
    {
        host.Serve(this, interactive);
        var cut = Render<CapacityPage>();
        cut.WaitForElement($"#capacity-form input[data-candidate='{candidate}']", Wait);
        return cut;
    }

    [Fact]
    public void The_plan_button_is_disabled_until_the_page_is_live()
    {
        var cut = Page(interactive: false, $"{PageHost.Device}/{host.Deployment}");
        Assert.Equal(["run-capacity"], cut.FindAll("button").Select(b => b.Id));
        Assert.True(cut.Find("#run-capacity").HasAttribute("disabled"));
    }

    [Fact]
    public async Task The_page_s_plan_over_deployments_of_two_devices_is_the_http_route_s_plan_with_its_table_and_chart()
    {
        // A second profiled deployment on another device, planned with 2 chips per replica; both at 1.5 per chip-hour.
        const string device = "npu-capacity";
        var other = await host.FittedAsync(device);
        var (first, second) = ($"{PageHost.Device}/{host.Deployment}", $"{device}/{other}");
        var cut = Page(interactive: true, second);
        Assert.False(cut.Find("#run-capacity").HasAttribute("disabled"));
        cut.Find($"input[data-chips='{second}']").Change("2");
        cut.Find("#cap-rate").Change("40");
        cut.Find("#cap-count").Change("400");
        cut.Find("#cap-seed").Change("5");
        cut.Find("#cap-slo-ttft").Change("60");
        cut.Find("#cap-slo-tpot").Change("20");
        cut.Find("#cap-price").Change("1.5");
        cut.Find("#capacity-form").Submit();
        cut.WaitForElement("#capacity-results", Wait);

        using var http = new HttpClient { BaseAddress = host.Server.HttpAddress };
        var api = new LensHttpClient(http, PageHost.Key);
        var report = await api.CapacityAsync(new CapacityRequest(
            [new CapacityCandidateSpec(PageHost.Device, host.Deployment, 1), new CapacityCandidateSpec(device, other, 2)], 60, 20, 0.9,
            Workload: new WorkloadSpec(40, 400, Seed: 5), PricePerChipHour: 1.5));
        Assert.Equal(400, report.Requests);
        foreach (var (name, c) in new[] { (first, report.Candidates[0]), (second, report.Candidates[1]) })
        {
            string[] cells = [.. cut.FindAll($"#capacity-results tr[data-candidate='{name}'] td").Select(td => td.TextContent)];
            Assert.Equal($"{c.Replicas} × {c.ChipsPerReplica}", cells[0]);
            Assert.Equal(c.Chips.ToString(CultureInfo.InvariantCulture), cells[1]);
            Assert.Equal(c.Replicas * c.ChipsPerReplica * 1.5, c.CostPerHour!.Value, 9);
            Assert.Equal(c.CostPerHour.Value.ToString("0.####", CultureInfo.InvariantCulture), cells[2]);
            Assert.Equal(c.CostPerMillionOutputTokens!.Value.ToString("0.####", CultureInfo.InvariantCulture), cells[3]);
            Assert.Equal(Format.Percent(c.Attainment), cells[4]);
            Assert.Equal([Format.Ms(c.TtftP90Ms), Format.Ms(c.TpotP90Ms), Format.Ms(c.E2eP90Ms)], cells[5..8]);
            Assert.Equal(c.Cheapest ? "cheapest" : c.Meets ? "meets" : $"fails: {c.Reason}", cells[9]);

            // The chart: each candidate at (p90 E2E, cost per hour), the cheapest ringed.
            var point = cut.Find($"#chart-capacity circle.point-frontier[data-name='{name}'], #chart-capacity circle.point-current[data-name='{name}']");
            Assert.Equal(c.E2eP90Ms!.Value.ToString("0.###", CultureInfo.InvariantCulture), point.GetAttribute("data-x"));
            Assert.Equal(c.CostPerHour.Value.ToString("0.###", CultureInfo.InvariantCulture), point.GetAttribute("data-y"));
            Assert.Equal(c.Cheapest, cut.FindAll($"#chart-capacity circle.point-recommended[data-name='{name}']").Count == 1);
        }

        Assert.Equal(1, report.Candidates.Count(c => c.Cheapest));
        Assert.Single(cut.FindAll("#capacity-results tr.cheapest"));
    }

    [Fact]
    public void The_grain_s_refusal_is_shown_on_the_page_with_its_message()
    {
        var cut = Page(interactive: true, $"{PageHost.Device}/{host.Deployment}");
        cut.Find("#cap-attainment").Change("1.5");
        cut.Find("#capacity-form").Submit();
        Assert.Equal("attainment must be in (0, 1]; got 1.5", cut.WaitForElement("#capacity-error[role=alert]", Wait).TextContent);
        Assert.Empty(cut.FindAll("#capacity-results"));

        cut.Find("#cap-attainment").Change("0.9");
        cut.Find("#cap-input-dist").Change("zipf:3");
        cut.Find("#capacity-form").Submit();
        Assert.Contains("workload.inputDist", cut.WaitForElement("#capacity-error[role=alert]", Wait).TextContent, StringComparison.Ordinal);
        Assert.False(cut.Find("#run-capacity").HasAttribute("disabled")); // ready for the next try
    }
}
