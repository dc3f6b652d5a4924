using Lens.Core;

namespace Lens.WebConsole;

/// <summary>A workload for the what-if page: Poisson arrivals at a rate, or a trace (<c>arrival_ms,input_len,output_len</c>).</summary>
public sealed class WorkloadForm
{
    public const int MaxCount = 100_000;
    public const int MaxTraceBytes = 4 * 1024 * 1024;
    public const int MaxDeployments = 6;

    public double Rate { get; set; } = 2;

    public int Count { get; set; } = 1000;

    public int? MaxOutput { get; set; }

    public int Seed { get; set; }

    public int Replicas { get; set; } = 1;

    public double? SloTtftMs { get; set; } = 500;

    public double? SloTpotMs { get; set; } = 50;
}

/// <summary>One deployment's result of a what-if run.</summary>
public sealed record WhatIfResult(string Deployment, SimulationResult Result);

/// <summary>
/// The what-if comparison: one workload and SLO through Lens.Core's <see cref="WorkloadSimulation"/> on each deployment's model. The
/// one place the console calls the simulation.
/// </summary>
public static class WhatIf
{
    /// <summary>Runs the workload on every model, or says what is wrong (named line of the trace, range, missing SLO half).</summary>
    /// <param name="trace">An uploaded trace with its lines, or null for Poisson arrivals from <paramref name="form"/>.</param>
    public static (WhatIfResult[] Results, string? Error) Run(IReadOnlyList<(string Name, DeploymentModel Model)> models, WorkloadForm form,
        CsvRows<TraceRequest>? trace, string traceName = "trace")
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(form);
        if (models.Count is 0 or > WorkloadForm.MaxDeployments)
        {
            return ([], $"choose 1..{WorkloadForm.MaxDeployments} fitted deployments to compare");
        }

        if (form.Replicas is < 1 or > 1024)
        {
            return ([], $"replicas must be in 1..1024; got {form.Replicas}");
        }

        if ((form.SloTtftMs is null) != (form.SloTpotMs is null) || form.SloTtftMs is <= 0 || form.SloTpotMs is <= 0)
        {
            return ([], "give both SLO values (TTFT and TPOT, ms, positive) or neither");
        }

        IReadOnlyList<TraceRequest> requests;
        if (trace is not null)
        {
            if (trace.Rows.Count == 0)
            {
                return ([], $"{traceName}: the trace has no requests");
            }

            foreach (var (name, model) in models)
            {
                if (WorkloadSimulation.FirstOutOfRange(model.Buckets, trace.Rows) is { } bad)
                {
                    return ([], $"{traceName}:{trace.Lines[bad.Index]}: {bad.Reason} (deployment {name})");
                }
            }

            requests = trace.Rows;
        }
        else
        {
            if (!(form.Rate > 0) || form.Count is < 1 or > WorkloadForm.MaxCount || form.MaxOutput is < 1)
            {
                return ([], $"the rate must be positive, the count in 1..{WorkloadForm.MaxCount} and the output cap at least 1");
            }

            requests = WorkloadSimulation.PoissonTrace(models[0].Model.Buckets, form.Rate, form.Count, form.Seed, form.MaxOutput);
            foreach (var (name, model) in models.Skip(1))
            {
                if (WorkloadSimulation.FirstOutOfRange(model.Buckets, requests) is { } bad)
                {
                    return ([], $"the generated request #{bad.Index + 1} fits {models[0].Name} but not {name}: {bad.Reason}; " +
                                "put the deployment with the smallest buckets first, or cap the output length");
                }
            }
        }

        var slo = form.SloTtftMs is { } t ? new ServiceObjectives(t, form.SloTpotMs!.Value) : null;
        return ([.. models.Select(m => new WhatIfResult(m.Name, WorkloadSimulation.Run(m.Model, requests, form.Replicas, slo)))], null);
    }
}
