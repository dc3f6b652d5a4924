using Bunit;
using Lens.Abstractions;
using Lens.Grains;
using Lens.WebConsole.Components.Shared;

namespace Lens.WebConsole.Tests;

/// <summary>bUnit tests of the console's components and page logic, with real fitted models and snapshots (no server).</summary>
public sealed class ComponentTests : BunitContext
{
    private static BucketSnapshot Snapshot(string bucket, long version, double? step = null, bool stale = false) =>
        BucketSnapshot.Empty(Lens.Core.BucketId.Parse(bucket)) with
        {
            Version = version, StepMs = step, StepStandardError = 0.05, MeasurementCount = 2, Stale = stale, IsComplete = true,
            LastProfiled = new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero),
        };

    [Fact]
    public void Bucket_table_shows_a_from_the_model_s_with_its_error_and_highlights_stale_buckets()
    {
        var cut = Render<BucketTable>(p => p
            .Add(t => t.Buckets, [Snapshot("prefill-32", 3), Snapshot("decode-64", 5, step: 3.25, stale: true)])
            .Add(t => t.Model, Models.Tiny()));

        var prefill = cut.Find("tr[data-bucket='prefill-32']");
        Assert.Equal("3", prefill.GetAttribute("data-version"));
        Assert.Contains("20 ± 0.1", prefill.TextContent, StringComparison.Ordinal);
        var decode = cut.Find("tr[data-bucket='decode-64']");
        Assert.Contains("3.25 ± 0.05", decode.TextContent, StringComparison.Ordinal);
        Assert.Contains("stale", decode.ClassList);
        Assert.Contains("2026-12-03 10:00:00 UTC", decode.TextContent, StringComparison.Ordinal);
        Assert.Empty(cut.FindAll("button")); // no re-profile action unless the page offers one
    }

    [Fact]
    public void Device_list_links_each_device_marks_the_shown_one_and_says_when_there_are_none()
    {
        var cut = Render<DeviceList>(p => p
            .Add(l => l.Devices, [new DeviceSummary("cpu-0", 2), new DeviceSummary("npu 7?", 1)])
            .Add(l => l.Current, "cpu-0"));

        var links = cut.FindAll("#device-list li a");
        Assert.Equal(["cpu-0", "npu 7?"], links.Select(a => a.TextContent));
        Assert.Equal("/ui?device=npu%207%3F", links[1].GetAttribute("href")); // names are escaped into the link
        Assert.Equal("page", links[0].GetAttribute("aria-current"));
        Assert.Null(links[1].GetAttribute("aria-current"));
        Assert.Equal("2 deployments", cut.Find("li[data-device='cpu-0'] small").TextContent);
        Assert.Equal("1 deployment", cut.Find("li[data-device='npu 7?'] small").TextContent);
        Assert.Empty(cut.FindAll("#devices-empty"));

        cut.Render(p => p.Add(l => l.Devices, []));
        Assert.Empty(cut.FindAll("#device-list li"));
        Assert.Contains("No devices yet", cut.Find("#devices-empty").TextContent, StringComparison.Ordinal);

        cut.Render(p => p.Add(l => l.Devices, null));
        Assert.Contains("Loading devices", cut.Find("#device-list [role=status]").TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public void Re_profile_button_names_its_bucket_and_reports_it()
    {
        string? asked = null;
        var cut = Render<BucketTable>(p => p
            .Add(t => t.Buckets, [Snapshot("decode-16", 1, step: 1), Snapshot("decode-32", 1, step: 2)])
            .Add(t => t.OnReprofile, (string b) => asked = b));

        var button = cut.Find("tr[data-bucket='decode-32'] button");
        Assert.Equal("Re-profile decode-32", button.GetAttribute("aria-label"));
        button.Click();
        Assert.Equal("decode-32", asked);

        cut.Render(p => p.Add(t => t.Busy, true));
        Assert.True(cut.Find("tr[data-bucket='decode-16'] button").HasAttribute("disabled"));
    }

    [Fact]
    public void Health_badge_says_profiling_failed_unprofiled_stale_drifting_or_healthy()
    {
        var profiled = new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero);
        BucketHealthView Bucket(bool stale = false, bool drifting = false, DateTimeOffset? at = null) =>
            new("decode-16", 30, 2, 0.01, 0.05, drifting, drifting ? 1 : 0, stale, at, 1);
        DeploymentHealth Health(ProfileState state, params BucketHealthView[] buckets) =>
            new("d", 1, 0, 0, 0, null, 3, true, ProfileProgress.None("d") with { State = state }, buckets);

        Assert.Equal("profiling", HealthBadge.Of(Health(ProfileState.Running, Bucket(at: profiled))).Text);
        Assert.Equal("profile failed", HealthBadge.Of(Health(ProfileState.Failed, Bucket(at: profiled))).Text);
        Assert.Equal("not profiled", HealthBadge.Of(Health(ProfileState.None, Bucket())).Text);
        Assert.Equal("1 stale", HealthBadge.Of(Health(ProfileState.Completed, Bucket(stale: true, at: profiled), Bucket(at: profiled))).Text);
        Assert.Equal("1 drifting", HealthBadge.Of(Health(ProfileState.Completed, Bucket(drifting: true, at: profiled))).Text);
        Assert.Equal("healthy", HealthBadge.Of(Health(ProfileState.Completed, Bucket(at: profiled))).Text);
        Assert.Equal(profiled, HealthBadge.LastProfiled(Health(ProfileState.Completed, Bucket(), Bucket(at: profiled))));
    }

    [Fact]
    public void Deployment_form_gives_the_same_spec_errors_as_the_api_by_field()
    {
        var good = new DeploymentForm().ToSpec(out var none);
        Assert.NotNull(good);
        Assert.Empty(none);
        Assert.Equal(BackendSpec.Reference, good.Backend.Kind);
        Assert.Equal("tiny", good.Backend.EngineProfile);
        Assert.Equal([16, 32, 64], good.PrefillBuckets);

        Assert.Null(new DeploymentForm { PrefillBuckets = "16,x" }.ToSpec(out var parse));
        Assert.Contains("'x' is not an integer", Assert.Single(parse["prefillBuckets"]), StringComparison.Ordinal);

        Assert.Null(new DeploymentForm { Name = "bad name", PrefillBuckets = "16,256", Repeats = 0 }.ToSpec(out var rules));
        Assert.Contains("name", rules.Keys);
        Assert.Contains("buckets", rules.Keys);
    }

    [Fact]
    public void Deployment_page_draws_the_output_length_most_measured_and_overlays_its_points()
    {
        var at = DateTimeOffset.UnixEpoch;
        MeasurementRecord M(int i, int o, double e2e, double? ttft) => new($"m{i}-{o}", "decode-16", i, o, e2e, ttft, MeasurementSource.Profile, at);
        MeasurementRecord[] measured = [M(1, 1, 10.5, 10.5), M(1, 14, 24, 10.4), M(17, 1, 20.2, 20.2), M(17, 14, 50, 20), M(33, 14, 70, 40)];
        var model = Models.Tiny();
        var output = DeploymentPageModel.DefaultOutput(measured, model.Buckets);
        Assert.Equal(14, output);

        var charts = DeploymentPageModel.Charts(model, measured, output);
        Assert.Equal(3, charts.E2eMeasured);
        Assert.Equal(3, System.Text.RegularExpressions.Regex.Count(charts.E2eSvg, "class=\"measured\""));
        Assert.Equal(5, System.Text.RegularExpressions.Regex.Count(charts.TtftSvg, "class=\"measured\""));
        Assert.Contains("data-edge=\"64\" data-kind=\"prefill\"", charts.TtftSvg, StringComparison.Ordinal);
        Assert.Equal(8, DeploymentPageModel.DefaultOutput([], model.Buckets));
    }

    [Fact]
    public void Advice_view_shows_current_each_budget_and_the_recommendation_with_curves_and_the_pareto_chart()
    {
        // Bimodal prompts: one bucket near 10 tokens and one near 60 beat the profile's 16, 32, 64 on mean E2E.
        var model = Models.Tiny();
        var trace = Enumerable.Range(0, 120).Select(n => new Lens.Core.TraceRequest(n * 200.0, n % 2 == 0 ? 10 : 60, 8)).ToArray();
        var advice = Lens.Core.Advisor.Advise(new Lens.Core.BucketCostModel(model),
            new Lens.Core.AdviceQuery(trace, MaxBuckets: 3, Slo: new(500, 50), TargetRate: 20));
        advice = Lens.Core.AdviceJson.Deserialize(Lens.Core.AdviceJson.Serialize(advice, "d", model.Buckets)); // as the page reads it

        var cut = Render<AdviceView>(p => p.Add(v => v.Advice, advice).Add(v => v.Deployment, "llama-1"));
        var rows = cut.FindAll("#advice-table tbody tr").Select(r => r.GetAttribute("data-row") ?? "").ToArray();
        Assert.Equal(["current", .. advice.Frontier.Select(f => f.Name), "recommended"], rows.AsEnumerable());
        Assert.Equal("k=1", rows[1]);
        var recommended = cut.Find("tr[data-row='recommended']");
        Assert.Contains("recommended", recommended.ClassList);
        Assert.Contains(string.Join(", ", advice.Recommended.Prefill), recommended.TextContent, StringComparison.Ordinal);
        Assert.Contains("within the SLO", recommended.TextContent, StringComparison.Ordinal); // replicas for the target rate
        Assert.Contains("goodput (req/s)", cut.Find("#advice-table thead").TextContent, StringComparison.Ordinal);
        Assert.Contains($"form {advice.PrefillCurve.Form},", cut.Find("[data-curve=prefill]").TextContent, StringComparison.Ordinal);
        Assert.Contains("leave-one-bucket-out error", cut.Find("[data-curve=decode]").TextContent, StringComparison.Ordinal);

        var current = cut.Find("#chart-advice circle.point-current");
        Assert.Equal(advice.Current!.BucketsCompiled.ToString(System.Globalization.CultureInfo.InvariantCulture), current.GetAttribute("data-x"));
        Assert.Equal("recommended", cut.Find("#chart-advice circle.point-recommended").GetAttribute("data-name"));
        Assert.Equal(advice.Frontier.Count, cut.FindAll("#chart-advice circle.point-frontier").Count);
    }

    [Fact]
    public void Advice_chart_tells_batch_search_points_from_the_frontier()
    {
        // Batch-search rows are named after their budget ("k=1 B=1,2"): the chart must not join them into the frontier.
        var model = Models.TinyBatched();
        var trace = Enumerable.Range(0, 120).Select(n => new Lens.Core.TraceRequest(n * 20.0, n % 2 == 0 ? 10 : 60, 8)).ToArray();
        var advice = Lens.Core.Advisor.Advise(new Lens.Core.BucketCostModel(model), new Lens.Core.AdviceQuery(trace, MaxBuckets: 2, Slo: new(500, 50)));
        advice = Lens.Core.AdviceJson.Deserialize(Lens.Core.AdviceJson.Serialize(advice, "d", model.Buckets));
        Assert.NotEmpty(advice.BatchSearch);

        var cut = Render<AdviceView>(p => p.Add(v => v.Advice, advice).Add(v => v.Deployment, "llama-b"));
        Assert.Equal(advice.Frontier.Count, cut.FindAll("#chart-advice circle.point-frontier").Count);
        Assert.Equal(advice.BatchSearch.Count(s => !double.IsNaN(s.Serving.E2e.P90)), cut.FindAll("#chart-advice circle.point-batch").Count);
    }

    [Fact]
    public void Advice_view_scores_the_current_deployment_on_the_workload_clamped_into_its_buckets()
    {
        var model = Models.Tiny();
        // I + O = 150 is beyond the profiled decode buckets (128) but within what the cost curves support (1.5 x 128): the current
        // deployment serves it clamped, as simulate would, and says so (issue 17, item 13: it was dropped from the comparison).
        Lens.Core.TraceRequest[] trace = [new(0, 60, 90), new(100, 10, 5)];
        var advice = Lens.Core.Advisor.Advise(new Lens.Core.BucketCostModel(model), new Lens.Core.AdviceQuery(trace, MaxBuckets: 2));
        var cut = Render<AdviceView>(p => p.Add(v => v.Advice, advice));
        Assert.NotNull(advice.Current);
        Assert.DoesNotContain("not scored", cut.Find("tr[data-row='current']").TextContent, StringComparison.Ordinal);
        Assert.Equal(7, cut.FindAll("tr[data-row='current'] td").Count); // edges, batch, graphs and figures, not a reason across the row
        Assert.Contains("1 of 2 requests were clamped into the buckets", cut.Find("#advice-clamped").TextContent, StringComparison.Ordinal);
        Assert.Single(cut.FindAll("#chart-advice circle.point-current"));
        Assert.Single(cut.FindAll("#chart-advice circle.point-recommended"));
        Assert.DoesNotContain("goodput", cut.Find("#advice-table thead").TextContent, StringComparison.Ordinal); // no SLO
    }
}
