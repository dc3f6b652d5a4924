using Bunit;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.WebConsole.Components.Pages;

namespace Lens.WebConsole.Tests;

/// <summary>A deployment's scheduling policy in the console: the create form builds it (and refuses a bad one by its field), and the
/// deployment page shows it, names its decode buckets under it, and predicts with the policy's served model.</summary>
public sealed class PolicyPageTests(PageHost host) : BunitContext, IClassFixture<PageHost>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static DeploymentForm ChunkedForm(string name) => new()
    {
        Name = name,
        Scheduler = PolicySpec.Chunked,
        MaxNumBatchedTokens = 16,
        TokenBuckets = "4,8,16",
        MaxNumSeqs = 4,
    };

    [Fact]
    public void The_form_builds_the_policy_and_refuses_a_bad_one_by_its_field()
    {
        var spec = ChunkedForm("form").ToSpec(out var errors);
        Assert.Empty(errors);
        Assert.Equal(PolicySpec.Chunked, spec!.Policy!.Scheduler);
        Assert.Equal([4, 8, 16], spec.Policy.TokenBuckets!);
        Assert.Null(new DeploymentForm().ToSpec(out _)!.Policy);                           // left alone: prefill-first padded, no policy at all

        var bad = new DeploymentForm { Name = "bad", Scheduler = PolicySpec.Chunked, TokenBuckets = "4,8,16", MaxNumSeqs = 4 }.ToSpec(out errors);
        Assert.Null(bad);
        Assert.Contains("1..", Assert.Single(errors["policy.maxNumBatchedTokens"]), StringComparison.Ordinal);
        Assert.Null(new DeploymentForm { Name = "bad", Execution = PolicySpec.Paged }.ToSpec(out errors));
        Assert.True(errors.ContainsKey("policy.blockSize"));
    }

    [Fact]
    public async Task The_deployment_page_shows_the_policy_and_predicts_under_it()
    {
        const string device = "npu-policy";
        var spec = ChunkedForm("chunked").ToSpec(out _)!;
        var lens = new LensClusterClient(host.Server.Client, PageHost.Tenant);
        var id = (await lens.CreateDeploymentAsync(device, spec)).Deployment.Id;

        // Measured on a known chunked device along the policy's own plan.
        var policy = SchedulingPolicy.ChunkedPrefill(16, [4, 8, 16], 4);
        var buckets = new BucketSet(spec.PrefillBuckets, spec.DecodeBuckets, DecodeConvention.AfterAppend, [4, 8, 16]);
        var truth = new DeploymentModel(buckets, [.. buckets.Prefill.Select(p => new PrefillValues(p, p / 4.0, 0, double.NaN, 0, double.NaN))],
            [.. buckets.Batch.SelectMany(t => buckets.Decode.Select(k => new DecodeValues(k, 1 + (t * 0.1) + (k / 64.0), 0, t)))], RepeatStatistic.Min, 0)
            .WithPolicy(policy);
        var rows = new List<MeasurementInput>();
        long group = 0;
        foreach (var row in PolicyPlanner.Create(buckets, policy).Rows)
        {
            var run = ServingSimulation.StaticBatch(truth, [.. Enumerable.Repeat(new RequestPair(row.InputLength, row.OutputLength), row.Batch)]);
            rows.AddRange(run.Requests.Select(r => new MeasurementInput(row.InputLength, row.OutputLength, r.E2eMs, r.TtftMs, row.Bucket.ToString(), row.Batch, group)));
            group++;
        }

        await lens.ImportMeasurementsAsync(device, id, new MeasurementBatch([.. rows], "policy-page"));

        host.Serve(this, interactive: true);
        var cut = Render<Deployment>(p => p.Add(d => d.Device, device).Add(d => d.Id, id));
        cut.WaitForElement("#policy", Wait);
        Assert.Equal("chunked padded: max_num_batched_tokens 16, token buckets 4, 8, 16, max_num_seqs 4", cut.Find("#policy").TextContent);
        Assert.Contains(cut.FindAll("dt"), dt => dt.TextContent == "Context buckets");
        cut.WaitForElement("#no-curves", Wait);                                                // the curves are drawn for prefill-first padded only
        cut.Find("#req-input").Change("40");
        cut.Find("#req-output").Change("30");
        cut.Find("#breakdown").Click();
        cut.WaitForElement("#prediction", Wait);
        Assert.Contains($"E2E {Format.Ms(truth.Predict(40, 30).E2eMs)} ms", cut.Find("#prediction").TextContent.Replace("\n", " ", StringComparison.Ordinal),
            StringComparison.Ordinal);
    }
}
