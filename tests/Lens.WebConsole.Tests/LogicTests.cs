using System.Net;
using Lens.Core;
using Microsoft.AspNetCore.Authentication;

namespace Lens.WebConsole.Tests;

public sealed class LogicTests
{
    [Fact]
    public void What_if_runs_every_deployment_on_the_same_workload_and_reports_slo_attainment()
    {
        var tiny = Models.Tiny();
        var (results, error) = WhatIf.Run([("a", tiny), ("b", tiny)], new WorkloadForm { Rate = 5, Count = 200, SloTtftMs = 1e9, SloTpotMs = 10 }, null);
        Assert.Null(error);
        Assert.Equal(["a", "b"], results.Select(r => r.Deployment));
        Assert.Equal(results[0].Result, results[1].Result); // same model, same trace
        Assert.Equal(200, results[0].Result.Requests);
        Assert.Equal(1.0, results[0].Result.SloAttainment); // every TPOT is at most S[128] = 4 ms
        var strict = WhatIf.Run([("a", tiny)], new WorkloadForm { Rate = 5, Count = 200, SloTtftMs = 1e9, SloTpotMs = 2.5 }, null).Results[0];
        Assert.InRange(strict.Result.SloAttainment!.Value, 0.01, 0.99); // mean TPOT above 2.5 ms for the longer requests
    }

    [Fact]
    public void What_if_names_the_trace_line_a_deployment_cannot_serve()
    {
        var trace = LensCsv.ReadTrace(new StringReader("arrival_ms,input_len,output_len\n0,10,5\n# comment\n5,100,5\n"), "t.csv");
        var (results, error) = WhatIf.Run([("a", Models.Tiny())], new WorkloadForm(), trace, "t.csv");
        Assert.Empty(results);
        Assert.StartsWith("t.csv:4: ", error, StringComparison.Ordinal);
        Assert.Contains("(deployment a)", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 1000, 1, "rate")]
    [InlineData(2, 0, 1, "count")]
    [InlineData(2, 100, 0, "replicas")]
    public void What_if_refuses_a_bad_workload(double rate, int count, int replicas, string word)
    {
        var (_, error) = WhatIf.Run([("a", Models.Tiny())], new WorkloadForm { Rate = rate, Count = count, Replicas = replicas }, null);
        Assert.Contains(word, error, StringComparison.Ordinal);
        var (_, none) = WhatIf.Run([], new WorkloadForm(), null);
        Assert.Contains("choose 1..", none, StringComparison.Ordinal);
        var (_, half) = WhatIf.Run([("a", Models.Tiny())], new WorkloadForm { SloTtftMs = 10, SloTpotMs = null }, null);
        Assert.Contains("both SLO values", half, StringComparison.Ordinal);
    }

    [Fact]
    public void Advise_form_sends_the_page_s_workload_slo_budget_and_batch_list()
    {
        var buckets = Models.Tiny().Buckets;
        var workload = new WorkloadForm { Rate = 4, Count = 50, Seed = 3, SloTtftMs = 500, SloTpotMs = 50 };
        var form = new AdviseForm { MaxBuckets = 3, BatchBuckets = " 1, 2 ,4 ", TargetRate = 10 };
        var request = form.ToRequest(workload, buckets, null, "trace", out var error);
        Assert.Null(error);
        Assert.NotNull(request);
        var drawn = new Workload { RequestsPerSecond = 4, Count = 50, Seed = 3 }.Generate(buckets).Requests; // the same draw the what-if run simulates
        Assert.Equal(drawn.Select(r => r.InputLength), request.InputLengths!);
        Assert.Equal(drawn.Select(r => r.ArrivalMs), request.ArrivalMs!);
        Assert.Equal((500.0, 50.0), (request.SloTtftMs!.Value, request.SloTpotMs!.Value));
        Assert.Equal((3, 10.0), (request.MaxBuckets, request.TargetRate!.Value));
        Assert.Equal([1, 2, 4], request.BatchBuckets!);

        // A trace is sent as it is, even beyond the profiled buckets (the advisor reads longer edges from the cost curves).
        var trace = LensCsv.ReadTrace(new StringReader("arrival_ms,input_len,output_len\n0,90,10\n5,10,5\n"), "t.csv");
        var fromTrace = new AdviseForm().ToRequest(new WorkloadForm { SloTtftMs = null, SloTpotMs = null }, buckets, trace, "t.csv", out error);
        Assert.Null(error);
        Assert.Equal([90, 10], fromTrace!.InputLengths!);
        Assert.Null(fromTrace.SloTtftMs);
        Assert.Null(fromTrace.BatchBuckets);
        Assert.Equal(4, fromTrace.MaxBuckets);
    }

    [Theory]
    [InlineData(0, null, null, true, "1..32; got 0")]
    [InlineData(33, null, null, true, "1..32; got 33")]
    [InlineData(4, "4,2", null, true, "batch buckets: ")]
    [InlineData(4, "1,x", null, true, "'x' is not an integer")]
    [InlineData(4, "1,2,0", null, true, "batch buckets: ")]
    [InlineData(4, null, -1.0, true, "target rate must be a positive")]
    [InlineData(4, null, 5.0, false, "needs the SLO")]
    public void Advise_form_refuses_bad_inputs_naming_them(int k, string? batch, double? target, bool slo, string expected)
    {
        var workload = new WorkloadForm { Count = 10, SloTtftMs = slo ? 500 : null, SloTpotMs = slo ? 50 : null };
        var request = new AdviseForm { MaxBuckets = k, BatchBuckets = batch, TargetRate = target }.ToRequest(workload, Models.Tiny().Buckets, null, "trace", out var error);
        Assert.Null(request);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Advise_form_refuses_an_empty_trace_a_long_batch_text_and_half_an_slo()
    {
        var buckets = Models.Tiny().Buckets;
        var empty = LensCsv.ReadTrace(new StringReader("arrival_ms,input_len,output_len\n"), "e.csv");
        Assert.Null(new AdviseForm().ToRequest(new WorkloadForm(), buckets, empty, "e.csv", out var error));
        Assert.Equal("e.csv: the trace has no requests", error);
        Assert.Null(new AdviseForm { BatchBuckets = string.Join(',', Enumerable.Range(1, 100)) }.ToRequest(new WorkloadForm(), buckets, null, "t", out error));
        Assert.Contains("at most 200 characters", error, StringComparison.Ordinal);
        Assert.Null(new AdviseForm().ToRequest(new WorkloadForm { SloTpotMs = null }, buckets, null, "t", out error));
        Assert.Contains("both SLO values", error, StringComparison.Ordinal);
        Assert.Null(new AdviseForm().ToRequest(new WorkloadForm { Rate = double.PositiveInfinity }, buckets, null, "t", out error));
        Assert.Contains("rate must be positive", error, StringComparison.Ordinal);
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
