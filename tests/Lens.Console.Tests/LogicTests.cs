using System.Net;
using Lens.Core;
using Lens.WebConsole;
using Microsoft.AspNetCore.Authentication;

namespace Lens.Console.Tests;

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
