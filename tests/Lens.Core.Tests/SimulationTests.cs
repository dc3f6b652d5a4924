namespace Lens.Core.Tests;

public class SimulationTests
{
    // A = 10 for every prompt; S = 1 per step: a request of O tokens takes 10 + (O - 1) ms, TTFT 10 ms.
    private static readonly DeploymentModel Model = new(new BucketSet([64], [64, 128]),
        [new PrefillValues(64, 10, 0, double.NaN, 0, double.NaN)], [new DecodeValues(64, 1, 0), new DecodeValues(128, 1, 0)],
        RepeatStatistic.Min, 0);

    [Fact]
    public void Requests_queue_first_come_first_served_on_one_device()
    {
        // Two requests arrive together: the second waits for the first (20 ms of service).
        var result = WorkloadSimulation.Run(Model, [new TraceRequest(0, 5, 11), new TraceRequest(0, 5, 11)], slo: new ServiceObjectives(15, 2));
        Assert.Equal(2, result.Requests);
        Assert.Equal(30, result.Ttft.Max);          // 20 ms wait + 10 ms TTFT
        Assert.Equal(40, result.E2e.Max);
        Assert.Equal(20, result.QueueWait.Max);
        Assert.Equal(1, result.Tpot.P50);
        Assert.Equal(0.5, result.SloAttainment);     // the waiting one misses the 15 ms TTFT objective
        Assert.Equal(2 / 0.040, result.RequestsPerSecond, 9);
        Assert.Equal(1, result.Utilization, 9);
    }

    [Fact]
    public void More_replicas_remove_the_queue()
    {
        var trace = new[] { new TraceRequest(0, 5, 11), new TraceRequest(0, 5, 11), new TraceRequest(1, 5, 11) };
        var two = WorkloadSimulation.Run(Model, trace, replicas: 3);
        Assert.Equal(0, two.QueueWait.Max);
        Assert.Equal(10, two.Ttft.Max);
        Assert.Throws<ArgumentOutOfRangeException>(() => WorkloadSimulation.Run(Model, trace, replicas: 0));
        Assert.Throws<ArgumentException>(() => WorkloadSimulation.Run(Model, []));
    }

    [Fact]
    public void First_out_of_range_names_the_first_request_the_buckets_cannot_serve()
    {
        Assert.Null(Workload.FirstOutOfRange(Model.Buckets, [new TraceRequest(0, 64, 64)]));
        var bad = Workload.FirstOutOfRange(Model.Buckets, [new TraceRequest(0, 5, 5), new TraceRequest(1, 65, 1), new TraceRequest(2, 0, 1)]);
        Assert.Equal(1, bad?.Index);
        Assert.Contains("65", bad?.Reason, StringComparison.Ordinal);
    }
}
