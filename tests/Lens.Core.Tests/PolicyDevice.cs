namespace Lens.Core.Tests;

/// <summary>
/// A simulated device for the policy fit: true cell costs run through the policy's reference scheduler, each release alone on an idle
/// replica, with multiplicative Gaussian noise on every measured time (relative sd <c>noise</c>, drawn per release for its end and per
/// request for its first token; TTFT held at most E2E).
/// </summary>
internal static class PolicyDevice
{
    public static List<MeasuredRequest> Measure(DeploymentModel truth, IEnumerable<PlanRow> rows, double noise, int seed)
    {
        var rng = new Random(seed);
        var scheduler = truth.Scheduler;
        var result = new List<MeasuredRequest>();
        long group = 0;
        foreach (var row in rows)
        {
            var sink = new ReleaseTimes(row.Batch);
            scheduler.Run([.. Enumerable.Repeat(new TraceRequest(0, row.InputLength, row.OutputLength), row.Batch)], truth.Costs, sink);
            var end = sink.E2e.Max() * (1 + (noise * Gaussian(rng)));
            for (var k = 0; k < row.Batch; k++)
            {
                var ttft = Math.Min(sink.Ttft[k] * (1 + (noise * Gaussian(rng))), end);
                result.Add(new MeasuredRequest(row.InputLength, row.OutputLength, end, ttft, row.Bucket, row.Batch, row.Batch > 1 ? group : null));
            }

            group++;
        }

        return result;
    }

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
