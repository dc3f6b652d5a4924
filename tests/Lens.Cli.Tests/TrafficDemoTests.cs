using System.Text.Json;

namespace Lens.Cli.Tests;

/// <summary>
/// <c>lens demo --traffic</c> end to end, small: the batched reference engine served over HTTP, profiled and fitted, its traffic
/// reported as OTLP spans by the standard OpenTelemetry exporter to an embedded LENS service. The slowdowns are larger than the
/// issue's 30% and 20% (the full run, in docs/results.md, uses those), so that the checks hold on a shared 2-core machine with
/// windows of 100 requests.
/// </summary>
public sealed class TrafficDemoTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    [Fact]
    public void A_slowed_cell_is_flagged_a_device_wide_slowdown_is_the_common_shift_and_another_tenant_reaches_nothing()
    {
        var r = _lens.Run("demo", "--traffic", "--window", "100", "--steady-windows", "1", "--cell-windows", "3", "--all-windows", "1",
            "--cell-slowdown", "4", "--all-slowdown", "2", "--repeats", "1", "--out-dir", "out", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal(r.Stdout.Trim(), _lens.Read("out/traffic.json").Trim());

        // Every window was exported by the standard exporter and analysed by the time its export was answered.
        var windows = root.GetProperty("windows").EnumerateArray().ToArray();
        Assert.All(windows, w => Assert.Equal(100, w.GetProperty("requests").GetInt32()));
        Assert.Equal(windows.Select((_, i) => i + 1), windows.Select(w => w.GetProperty("index").GetInt32()));
        var phases = windows.Select(w => w.GetProperty("phase").GetString()).ToArray();
        Assert.Equal("steady", phases[0]);
        Assert.Equal("all", phases[^1]);

        // The slowed (batch > 1) decode cell is flagged within three windows, and nothing else is.
        var cell = root.GetProperty("slowedCell").GetString()!;
        Assert.Matches("^decode-[0-9]+-b[0-9]+$", cell);
        Assert.InRange(root.GetProperty("flaggedAfterWindows").GetInt32(), 1, 3);
        var cellWindows = windows.Where(w => w.GetProperty("phase").GetString() == "cell").ToArray();
        Assert.Contains(cell, cellWindows[^1].GetProperty("flagged").EnumerateArray().Select(f => f.GetString()));
        Assert.True(root.GetProperty("reprofiledSlowedCellMs").GetDouble() > root.GetProperty("profiledCellMs").GetDouble());

        // Every cell twice the work: the common shift rises well above the steady one.
        var steadyShift = windows[0].GetProperty("commonShift").GetDouble();
        Assert.True(root.GetProperty("commonShift").GetDouble() > steadyShift + 0.4, r.Stdout);

        // Tenant B's exporter named tenant A's deployment: nothing arrived, and B cannot read A's report.
        Assert.True(root.GetProperty("spansSentByTenantB").GetInt32() > 0);
        Assert.Equal(0, root.GetProperty("receivedByTenantAFromB").GetInt64());
        Assert.False(root.GetProperty("tenantBSeesTenantA").GetBoolean());
    }
}
