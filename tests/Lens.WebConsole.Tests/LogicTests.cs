using System.Net;
using Lens.Core;
using Microsoft.AspNetCore.Authentication;

namespace Lens.WebConsole.Tests;

public sealed class LogicTests
{
    private static readonly Lens.Abstractions.DeploymentSpec Spec = new DeploymentForm().ToSpec(out _)!; // P = 16..64, D = 16..128

    [Fact]
    public void What_if_sends_the_service_a_workload_drawn_over_the_first_deployment_s_buckets()
    {
        var form = new WorkloadForm { Rate = 5, Count = 200, Seed = 3, Replicas = 2, SloTtftMs = 400, SloTpotMs = 20 };
        var request = form.ToSimulateRequest(null, Spec);
        Assert.Equal(new Lens.Abstractions.WorkloadSpec(5, 200, InputDist: "uniform:1-64", OutputDist: "uniform:1-127", Seed: 3), request.Workload);
        Assert.Null(request.ArrivalMs);
        Assert.Equal((2, 400.0, 20.0), (request.Replicas, request.SloTtftMs!.Value, request.SloTpotMs!.Value));
        Assert.Equal("uniform:1-20", new WorkloadForm { MaxOutput = 20 }.Workload(Spec).OutputDist); // the output cap

        // Nothing is checked here: the grain refuses what is out of range with the service's message and limits.
        var bad = new WorkloadForm { Rate = -1, Count = 0, Replicas = 0, SloTtftMs = 10, SloTpotMs = null }.ToSimulateRequest(null, Spec);
        Assert.Equal((-1.0, 0, 0, 10.0), (bad.Workload!.RequestsPerSecond, bad.Workload.Count, bad.Replicas, bad.SloTtftMs!.Value));
        Assert.Null(bad.SloTpotMs);
    }

    [Fact]
    public void What_if_sends_an_uploaded_trace_as_it_is()
    {
        var trace = LensCsv.ReadTrace(new StringReader("arrival_ms,input_len,output_len\n0,10,5\n# comment\n5,100,5\n"), "t.csv");
        var request = new WorkloadForm { SloTtftMs = null, SloTpotMs = null }.ToSimulateRequest(trace, Spec);
        Assert.Null(request.Workload);
        Assert.Equal([0.0, 5.0], request.ArrivalMs!);
        Assert.Equal([10, 100], request.InputLengths!); // beyond the buckets: the grain says which row
        Assert.Equal([5, 5], request.OutputLengths!);
        Assert.Null(request.SloTtftMs);
    }

    [Fact]
    public void Advise_form_sends_the_page_s_workload_slo_budget_and_batch_list()
    {
        var workload = new WorkloadForm { Rate = 4, Count = 50, Seed = 3, SloTtftMs = 500, SloTpotMs = 50 };
        var form = new AdviseForm { MaxBuckets = 3, BatchBuckets = " 1, 2 ,4 ", TargetRate = 10 };
        var request = form.ToRequest(workload, Spec, null, out var error);
        Assert.Null(error);
        Assert.NotNull(request);
        Assert.Equal(workload.ToSimulateRequest(null, Spec).Workload, request.Workload); // the same draw the what-if run simulates
        Assert.Null(request.ArrivalMs);
        Assert.Equal((500.0, 50.0), (request.SloTtftMs!.Value, request.SloTpotMs!.Value));
        Assert.Equal((3, 10.0), (request.MaxBuckets, request.TargetRate!.Value));
        Assert.Equal([1, 2, 4], request.BatchBuckets!);

        // A trace is sent as it is, even beyond the profiled buckets (the advisor reads longer edges from the cost curves).
        var trace = LensCsv.ReadTrace(new StringReader("arrival_ms,input_len,output_len\n0,90,10\n5,10,5\n"), "t.csv");
        var fromTrace = new AdviseForm().ToRequest(new WorkloadForm { SloTtftMs = null, SloTpotMs = null }, Spec, trace, out error);
        Assert.Null(error);
        Assert.Null(fromTrace!.Workload);
        Assert.Equal([90, 10], fromTrace.InputLengths!);
        Assert.Null(fromTrace.SloTtftMs);
        Assert.Null(fromTrace.BatchBuckets);
        Assert.Equal(4, fromTrace.MaxBuckets);
    }

    [Theory]
    [InlineData("4,2", "batch buckets: ")]
    [InlineData("1,x", "'x' is not an integer")]
    [InlineData("1,2,0", "batch buckets: ")]
    public void Advise_form_refuses_a_batch_list_it_cannot_read(string batch, string expected)
    {
        var request = new AdviseForm { BatchBuckets = batch }.ToRequest(new WorkloadForm(), Spec, null, out var error);
        Assert.Null(request);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.Null(new AdviseForm { BatchBuckets = string.Join(',', Enumerable.Range(1, 100)) }.ToRequest(new WorkloadForm(), Spec, null, out error));
        Assert.Contains("at most 200 characters", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Sign_in_accepts_a_tenant_key_and_limits_wrong_keys_per_address()
    {
        using var signIn = new ConsoleSignIn(key => key == "right-key-0123456789" ? "acme" : null, TimeProvider.System);
        var here = IPAddress.Parse("10.1.2.3");
        var ok = signIn.Attempt(" right-key-0123456789 ", here);
        Assert.Equal("acme", ok.Principal.Tenant());
        Assert.True(signIn.StillValid(ok.Principal, ok.Properties!));

        for (var n = 0; n < ConsoleSignIn.FailuresPerWindow; n++)
        {
            var wrong = signIn.Attempt("wrong-" + n, here);
            Assert.False(wrong.Throttled);
            Assert.Contains("not valid", wrong.Error, StringComparison.Ordinal);
        }

        var throttled = signIn.Attempt("right-key-0123456789", here);
        Assert.True(throttled.Throttled);
        Assert.Null(throttled.Principal);
        Assert.Equal("acme", signIn.Attempt("right-key-0123456789", IPAddress.Parse("10.1.2.4")).Principal.Tenant()); // another address
        Assert.Contains("enter", signIn.Attempt("  ", IPAddress.Parse("10.1.2.5")).Error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_session_ends_when_its_key_no_longer_maps_to_its_tenant()
    {
        var keys = new Dictionary<string, string> { ["key-one-0123456789"] = "acme" };
        using var signIn = new ConsoleSignIn(key => keys.GetValueOrDefault(key), TimeProvider.System);
        var ok = signIn.Attempt("key-one-0123456789", IPAddress.Loopback);
        keys.Clear();
        Assert.False(signIn.StillValid(ok.Principal, ok.Properties!));
        Assert.False(signIn.StillValid(ok.Principal, new AuthenticationProperties()));
    }
}
