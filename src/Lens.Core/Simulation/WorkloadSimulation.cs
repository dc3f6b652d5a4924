namespace Lens.Core;

/// <summary>
/// Serving a trace on a deployment (method.md, "Beyond the paper", 5, and "Batched serving"): the continuous-batching scheduler of
/// <see cref="ServingSimulation"/>, with at most <c>max_num_seqs</c> sequences in flight per replica (the largest batch bucket by
/// default; a deployment with batch buckets <c>[1]</c> runs one request at a time) and one first-come first-served queue shared by
/// the replicas, summarised. Traces come from <see cref="Workload"/>.
/// </summary>
public static class WorkloadSimulation
{
    public static SimulationResult Run(DeploymentModel model, IReadOnlyList<TraceRequest> trace, int replicas = 1, ServiceObjectives? slo = null,
        int? maxNumSeqs = null) =>
        ServingSimulation.Simulate(model, trace, maxNumSeqs, replicas).Summarize(slo);
}
