using Lens.Testing;
using Lens.ClusterDrill;
using Xunit.Abstractions;

namespace Lens.Cluster.Tests;

/// <summary>
/// Three real <c>lens serve</c> processes on Azure Table storage (Azurite), one cluster on tables of its own; one is SIGKILLed in
/// the middle of a prediction load and of profiles in progress. Never asserts timings: only what was served and what is stored.
/// </summary>
[Trait("Category", "Azurite")]
public sealed class ClusterFaultTests(AzuriteFixture azurite, ITestOutputHelper output) : IClassFixture<AzuriteFixture>
{
    [Fact]
    public async Task Three_silos_form_one_cluster_any_serves_and_losing_one_fails_no_request_and_loses_no_measurement()
    {
        var work = Directory.CreateTempSubdirectory("lens-cluster-test-").FullName;
        var options = new DrillOptions
        {
            ConnectionString = azurite.ConnectionString,
            WorkDirectory = work,
            MaxRequests = 2000,
            Log = line => output.WriteLine(line),
        };
        Assert.True(File.Exists(options.LensDll), $"lens.dll not built at {options.LensDll}");

        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(5)); // a hung cluster fails the test rather than CI
        var report = await Drill.RunAsync(options, limit.Token);
        output.WriteLine(System.Text.Json.JsonSerializer.Serialize(report));

        // The cluster formed, and every silo answered a prediction on its own.
        Assert.Equal(3, report.ActiveSilosAtStart);
        Assert.All(report.EverySiloServedDirectly, Assert.True);
        Assert.All(report.ServedBySilo, n => Assert.True(n > 0, $"served by silo: {string.Join(", ", report.ServedBySilo)}"));

        // One silo was killed while it hosted a profile in progress, in the middle of the load.
        Assert.NotNull(report.KilledSilo);
        Assert.True(report.ProfilesOnKilledSilo >= 1);
        Assert.True(report.ProfileRowsDoneAtKill > 0, "the killed silo's profiles had stored no row yet");
        Assert.True(report.ProfilesUnfinishedAtKill >= 1, "no profile on the killed silo was still running at the kill");
        Assert.InRange(report.RequestsBeforeKill, 1, report.Requests - 1);

        // No request failed after client retry.
        Assert.Equal(0, report.Failed);
        Assert.Equal(report.Requests, report.Served);

        // No measurement lost: every planned profile row stored exactly once (those taken before the kill included), every import kept.
        Assert.Equal(report.ProfileRowsDoneAtKill, report.ProfileRowsDoneAtKillKept); // the rows of the profile in progress at the kill
        Assert.Equal(0, report.ProfileRowsLost);
        Assert.Equal(0, report.ProfileRowsDuplicated);
        Assert.Equal(report.ProfileRowsExpected, report.ProfileRowsStored);
        Assert.Equal(report.ImportsExpected, report.ImportsStored);
        Assert.True(report.MeasurementsAfter >= report.MeasurementsBeforeKill, $"{report.MeasurementsBeforeKill} before, {report.MeasurementsAfter} after");
        Assert.Empty(report.Problems);

        // Everything the drill started is stopped.
        Assert.False(File.Exists(Path.Combine(work, "pids")));
        Assert.Equal(3, report.SiloPids.Length);
        Assert.All(report.SiloPids, pid => Assert.False(RunsLens(pid), $"silo process {pid} still runs"));

        Directory.Delete(work, recursive: true);
    }

    private static bool RunsLens(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Contains("lens.dll", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false; // no such process
        }
    }
}
