using System.Text.Json;

namespace Lens.Cli.Tests;

/// <summary>
/// A small <c>lens capacity-check</c> (issue 20's end-to-end check): two layouts of the tiny batched engine profiled over HTTP,
/// a trace and SLO derived from the fits, the plan, and each recommended fleet and one replica fewer replayed against twins.
/// Measured attainment is not asserted against predicted here (the tiny engine's steps are microseconds and this machine is
/// shared); that comparison, at full size, is the README's.
/// </summary>
public sealed class CapacityCheckCliTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    [Fact]
    public void Profiles_two_layouts_plans_a_fleet_and_replays_it_and_one_replica_fewer_against_twins()
    {
        var run = _lens.Run("capacity-check", "--engine", "tiny-batch", "--degrees", "1,2", "--requests", "40", "--repeats", "1",
            "--slowdown", "20", "--out-dir", "check", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var doc = JsonDocument.Parse(run.Stdout);
        var root = doc.RootElement;
        Assert.Equal(2, root.GetProperty("layouts").GetArrayLength());
        var slo = root.GetProperty("slo");
        Assert.True(slo.GetProperty("ttftMs").GetDouble() > 0 && slo.GetProperty("tpotMs").GetDouble() > 0);

        // Every layout that meets the SLO is replayed at its recommended size (more than one replica: the load is 2.5 replicas of
        // the fastest) and one fewer; predicted attainment separates them, as the plan's fewest-replicas search says.
        var fleets = root.GetProperty("fleets").EnumerateArray().ToArray();
        Assert.NotEmpty(fleets);
        foreach (var layout in fleets.GroupBy(f => f.GetProperty("layout").GetString()))
        {
            var recommended = Assert.Single(layout, f => f.GetProperty("recommended").GetBoolean());
            var fewer = Assert.Single(layout, f => !f.GetProperty("recommended").GetBoolean());
            Assert.True(recommended.GetProperty("replicas").GetInt32() > 1);
            Assert.Equal(recommended.GetProperty("replicas").GetInt32() - 1, fewer.GetProperty("replicas").GetInt32());
            Assert.True(recommended.GetProperty("predictedAttainment").GetDouble() >= 0.9);
            Assert.True(fewer.GetProperty("predictedAttainment").GetDouble() < 0.9);
            foreach (var f in layout)
            {
                Assert.Equal(0, f.GetProperty("failed").GetInt32());
                Assert.InRange(f.GetProperty("measuredAttainment").GetDouble(), 0, 1);
                Assert.True(f.GetProperty("measuredE2eP90Ms").GetDouble() > 0);
                Assert.True(File.Exists(_lens.PathOf($"check/measured-{layout.Key}-{f.GetProperty("replicas").GetInt32()}.csv")));
            }
        }

        // The capacity command it prints plans the same fleets from the files it wrote.
        var command = root.GetProperty("capacityCommand").GetString()!.Split(' ')[1..];
        var plan = _lens.Run([.. command, "--json", "--no-headroom"]);
        Assert.True(plan.ExitCode == 0, plan.Stderr);
        using var planned = JsonDocument.Parse(plan.Stdout);
        foreach (var candidate in planned.RootElement.GetProperty("candidates").EnumerateArray().Where(c => c.GetProperty("meets").GetBoolean()))
        {
            var name = Path.GetFileNameWithoutExtension(candidate.GetProperty("model").GetString());
            Assert.Contains(fleets, f => f.GetProperty("layout").GetString() == name && f.GetProperty("recommended").GetBoolean() &&
                f.GetProperty("replicas").GetInt32() == candidate.GetProperty("replicas").GetInt32());
        }
    }

    [Fact]
    public void Degrees_that_do_not_divide_the_layers_are_refused()
    {
        var run = _lens.Run("capacity-check", "--engine", "tiny-batch", "--degrees", "1,3", "--out-dir", "check");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("3 does not divide the profile's 2 layers", run.Stderr);
    }
}
