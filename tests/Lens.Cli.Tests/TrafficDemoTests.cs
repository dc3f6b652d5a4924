using System.Text.Json;

namespace Lens.Cli.Tests;

/// <summary>
/// <c>lens demo --traffic</c> end to end, small: the batched reference engine served over HTTP, profiled and fitted, its traffic
/// reported as OTLP spans by the standard OpenTelemetry exporter to an embedded LENS service. A profile between tiny-batch (whose
/// steps are so short that HTTP and scheduling overheads, which no slowdown multiplies, dominate) and nxdi-small-batch (whose
/// traffic is too slow for a test) keeps it under a minute. What it asserts holds on a loaded 2-core machine: every window
/// exported and analysed, the slowed cell's cost really changed, the device-wide slowdown raises the common shift, and another
/// tenant's spans reach nothing. The detection figures (30% one cell, 20% all) come from the full run in docs/results.md,
/// which also says how they fare when other work shares the cores.
/// </summary>
[Collection(EngineTimedCollection.Name)]
public sealed class TrafficDemoTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    [Fact]
    public void A_slowed_cell_is_flagged_a_device_wide_slowdown_is_the_common_shift_and_another_tenant_reaches_nothing()
    {
        _lens.Write("ci-batch.json", Profile);
        var r = _lens.Run("demo", "--traffic", "--engine", _lens.PathOf("ci-batch.json"), "--window", "100", "--baseline-windows", "2", "--steady-windows", "1", "--cell-windows", "3", "--all-windows", "1",
            "--cell-slowdown", "4", "--all-slowdown", "2", "--repeats", "1", "--out-dir", "out", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal(r.Stdout.Trim(), _lens.Read("out/traffic.json").Trim());

        // Every window was exported by the standard exporter and analysed by the time its export was answered.
        var windows = root.GetProperty("windows").EnumerateArray().ToArray();
        Assert.All(windows, w => Assert.Equal(100, w.GetProperty("requests").GetInt32()));
        Assert.Equal(windows.Select((_, i) => i + 1), windows.Select(w => w.GetProperty("index").GetInt32()));
        var phases = windows.Select(w => w.GetProperty("phase").GetString()!).ToArray();
        Assert.Equal(["learn", "learn", "steady"], phases[..3]);
        Assert.Equal("all", phases[^1]);
        var steady = windows[2];

        // The slowed cell is a decode cell of a batch above 1 that the steady traffic ran, and the hook really slowed it alone:
        // re-profiled with the slowdown on, its cost is well above its profiled one.
        var cell = root.GetProperty("slowedCell").GetString()!;
        Assert.Matches("^decode-[0-9]+-b[24]$", cell);
        Assert.Contains(steady.GetProperty("cells").EnumerateArray(), c => c.GetProperty("cell").GetString() == cell);
        Assert.True(root.GetProperty("reprofiledSlowedCellMs").GetDouble() > 1.5 * root.GetProperty("profiledCellMs").GetDouble(), r.Stdout);
        var checks = root.GetProperty("checks").EnumerateArray().ToArray();
        Assert.Equal(7, checks.Length);
        Assert.Equal(root.GetProperty("met").GetBoolean(), checks.All(c => c.GetProperty("met").GetBoolean()));

        // Every cell twice the work: the common shift rises well above the steady one.
        var steadyShift = steady.GetProperty("commonShift").GetDouble();
        Assert.True(root.GetProperty("commonShift").GetDouble() > steadyShift + 0.3, r.Stdout);

        // Tenant B's exporter named tenant A's deployment: nothing arrived, and B cannot read A's report.
        Assert.True(root.GetProperty("spansSentByTenantB").GetInt32() > 0);
        Assert.Equal(0, root.GetProperty("receivedByTenantAFromB").GetInt64());
        Assert.False(root.GetProperty("tenantBSeesTenantA").GetBoolean());
        Assert.True(checks[^1].GetProperty("met").GetBoolean());
    }

    /// <summary>Two layers of width 192, batch buckets 1, 2, 4: about 45 requests/s sustained on one core.</summary>
    private const string Profile = """
        { "name": "ci-batch", "layers": 2, "hidden": 192, "heads": 6, "kvHeads": 2, "ffn": 384, "vocab": 512, "seed": 3, "threads": 1,
          "prefillBuckets": [64, 128, 256], "decodeBuckets": [128, 256, 512], "convention": "after-append", "batchBuckets": [1, 2, 4] }
        """;
}
