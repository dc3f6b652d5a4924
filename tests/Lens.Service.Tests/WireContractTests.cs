using System.Reflection;
using System.Text.Json;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Grains;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace Lens.Service.Tests;

/// <summary>
/// The client SDK ships wire types only: neither <c>Lens.Abstractions</c> nor <c>Lens.Client</c> may reach Lens.Core or MathNet, and
/// the wire records keep their JSON (HTTP bodies) and Orleans (grain calls, stored state) shapes while their Core mappers live in
/// Lens.Grains.
/// </summary>
public sealed class WireContractTests
{
    private static readonly string[] Forbidden = ["Lens.Core", "MathNet.Numerics"];

    public static TheoryData<string> SdkAssemblies => new() { "Lens.Abstractions", "Lens.Client" };

    [Theory]
    [MemberData(nameof(SdkAssemblies))]
    public void The_sdk_assemblies_reference_neither_core_nor_mathnet(string name)
    {
        var root = new[] { typeof(BucketSnapshot).Assembly, typeof(LensClusterClient).Assembly }.Single(a => a.GetName().Name == name);
        var reached = Reachable(root);

        Assert.Contains("Orleans.Serialization", reached); // the walk does follow references
        Assert.All(Forbidden, f => Assert.DoesNotContain(f, reached));
    }

    [Theory]
    [MemberData(nameof(SdkAssemblies))]
    public void The_sdk_projects_restore_neither_core_nor_mathnet(string name)
    {
        // The restore's closure of project and package references, used or not (the compiler drops unused references from metadata).
        var assets = Path.Combine(FindRoot(), "src", name, "obj", "project.assets.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(assets));
        var libraries = doc.RootElement.GetProperty("libraries").EnumerateObject().Select(p => p.Name.Split('/')[0]).ToArray();

        Assert.Contains("Microsoft.Orleans.Sdk", libraries);
        Assert.All(Forbidden, f => Assert.DoesNotContain(f, libraries, StringComparer.OrdinalIgnoreCase));
    }

    [Fact]
    public void Wire_records_keep_their_json_and_orleans_shapes()
    {
        var record = new MeasurementRecord("run-1:7", "decode-256-b4", 100, 32, 812.5, 40.25, MeasurementSource.Profile,
            new DateTimeOffset(2026, 12, 7, 14, 0, 0, TimeSpan.Zero), Batch: 4, Group: 9);
        var snapshot = new BucketSnapshot("prefill-128", 3, null, 0, [new LengthEstimateDto(64, 12.5, 0.25)], [new LengthEstimateDto(64, 13, 0.5)],
            6, 2, 0.01, null, true, false, null, 0, Excess: new RepeatExcessDto([0.1], [0.05], [0.2], [0.1]));

        Assert.Equal(
            """{"id":"run-1:7","bucket":"decode-256-b4","inputLength":100,"outputLength":32,"e2eMs":812.5,"ttftMs":40.25,"source":"profile","at":"2026-12-07T14:00:00+00:00","batch":4,"group":9}""",
            JsonSerializer.Serialize(record, LensJson.Options));
        Assert.Equal(
            """{"bucket":"prefill-128","version":3,"stepStandardError":0,"prefillEstimates":[{"inputLength":64,"valueMs":12.5,"standardError":0.25}],"ttftEstimates":[{"inputLength":64,"valueMs":13,"standardError":0.5}],"measurementCount":6,"points":2,"relativeNoise":0.01,"isComplete":true,"stale":false,"telemetryCount":0,"pendingCount":0}""",
            JsonSerializer.Serialize(snapshot, LensJson.Options));

        // Field ids and type aliases, as grain calls and Orleans-serialized state carry them.
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        Assert.Equal(
            "300172589DF8336C656E732E4D6561737572656D656E745265636F72642E7631E8400F72756E2D313A37411B6465636F64652D3235362D62" +
            "3401220301818100000000006489408100000000002044400101218000B028626A54DF08810000000000000000E001110125E0",
            Convert.ToHexString(serializer.SerializeToArray<object>(record)));
        Assert.Equal(
            "30014613BF292D6C656E732E4275636B6574536E617073686F742E7631E8401770726566696C6C2D313238010DC101810000000000000000" +
            "21000321E800020281000000000000294081000000000000D03FE0E021000321E8000202810000000000002A4081000000000000E03FE0E0" +
            "01190109817B14AE47E17A843FC10101030101C10101010101C10121E8200003819A9999999999B93FE0210003819A9999999999A93FE021" +
            "0003819A9999999999C93FE0210003819A9999999999B93FE0E0E0",
            Convert.ToHexString(serializer.SerializeToArray<object>(snapshot)));

        var back = Assert.IsType<BucketSnapshot>(serializer.Deserialize<object>(serializer.SerializeToArray<object>(snapshot)));
        Assert.Equal(snapshot.Excess!.TtftFloor, back.Excess!.TtftFloor);
        Assert.Equal(record, serializer.Deserialize<object>(serializer.SerializeToArray<object>(record)));
    }

    [Fact]
    public void The_mappers_in_grains_round_trip_through_core()
    {
        var record = new MeasurementRecord("r:1", "decode-64-b2", 10, 5, 50, 8, MeasurementSource.Import, DateTimeOffset.UnixEpoch, Batch: 0);
        var measured = record.ToMeasurement();
        Assert.Equal(new BucketId(BucketKind.Decode, 64, 2), measured.Bucket);
        Assert.Equal(1, measured.Batch); // a record stored before batch buckets reads as batch 1

        var key = new DeploymentKey("acme", "npu-1", "llama-0123456789");
        var bucket = key.Bucket(BucketId.Parse("decode-64-b2"));
        Assert.Equal(key.BucketGrainKey("decode-64-b2"), bucket.Format());
        Assert.Equal(bucket, BucketKey.Parse(bucket.Format()));
        Assert.Throws<LensException>(() => key.BucketGrainKey("decode-64|x"));

        Assert.Equal(DecodeConvention.BeforeAppend, Conventions.Parse(Conventions.BeforeAppend));
        var empty = BucketSnapshot.Empty(new BucketId(BucketKind.Decode, 64, 2));
        Assert.Equal("decode-64-b2", empty.Bucket);
        Assert.Equal(measured.Bucket, empty.ToFit().Bucket);
        Assert.Equal("no measurements", empty.ToFit().Warning);
    }

    private static HashSet<string> Reachable(Assembly root)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal) { root.GetName().Name! };
        var queue = new Queue<Assembly>([root]);
        while (queue.TryDequeue(out var assembly))
        {
            foreach (var reference in assembly.GetReferencedAssemblies())
            {
                if (!seen.Add(reference.Name!))
                {
                    continue;
                }

                try
                {
                    queue.Enqueue(Assembly.Load(reference));
                }
                catch (FileNotFoundException)
                {
                    // Named but not deployed with the tests (an optional dependency): its name is recorded all the same.
                }
            }
        }

        return seen;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LENS.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("LENS.sln not found above " + AppContext.BaseDirectory);
    }
}
