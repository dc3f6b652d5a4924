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

    /// <summary>The SLO (null for none), or <paramref name="error"/> when only one half is given or a value is not positive.</summary>
    public ServiceObjectives? Slo(out string? error)
    {
        var bad = (SloTtftMs is null) != (SloTpotMs is null) || SloTtftMs is <= 0 || SloTpotMs is <= 0;
        error = bad ? "give both SLO values (TTFT and TPOT, ms, positive) or neither" : null;
        return !bad && SloTtftMs is { } ttft ? new ServiceObjectives(ttft, SloTpotMs!.Value) : null;
    }

    /// <summary>
    /// The workload's requests: the uploaded <paramref name="trace"/>'s rows, or Poisson arrivals with lengths uniform over what
    /// <paramref name="buckets"/> serve; null with <paramref name="error"/> for an empty trace or a bad rate, count or output cap.
    /// </summary>
    public IReadOnlyList<TraceRequest>? Requests(BucketSet buckets, CsvRows<TraceRequest>? trace, string traceName, out string? error)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        error = null;
        if (trace is not null)
        {
            error = trace.Rows.Count == 0 ? $"{traceName}: the trace has no requests" : null;
            return error is null ? trace.Rows : null;
        }

        var workload = new Workload { RequestsPerSecond = Rate, Count = Count, Seed = Seed, MaxOutput = MaxOutput, Replicas = Replicas };
        if (workload.Validate(NameOf, MaxCount) is { } invalid)
        {
            error = invalid.Message;
            return null;
        }

        return workload.Generate(buckets).Requests;
    }

    /// <summary>The form's name of each workload field, for errors.</summary>
    private static string NameOf(WorkloadField field) => field switch
    {
        WorkloadField.Rate => "the rate",
        WorkloadField.Count => "the count",
        WorkloadField.MaxOutput => "the output cap",
        WorkloadField.Replicas => "replicas",
        _ => field.ToString(),
    };
}

/// <summary>One deployment's result of a what-if run.</summary>
public sealed record WhatIfResult(string Deployment, SimulationResult Result);

/// <summary>
/// The what-if comparison: one workload (Lens.Core's <see cref="Workload"/>) and SLO through <see cref="WorkloadSimulation"/> on each deployment's model. The
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

        if (form.Replicas is < 1 or > Workload.MaxReplicas)
        {
            return ([], $"replicas must be in 1..{Workload.MaxReplicas}; got {form.Replicas}");
        }

        var slo = form.Slo(out var sloError);
        if (sloError is not null)
        {
            return ([], sloError);
        }

        if (form.Requests(models[0].Model.Buckets, trace, traceName, out var workloadError) is not { } requests)
        {
            return ([], workloadError);
        }

        // A trace names its line; a generated workload fits the first deployment's buckets by construction.
        foreach (var (name, model) in trace is null ? models.Skip(1) : models)
        {
            if (Workload.FirstOutOfRange(model.Buckets, requests) is { } bad)
            {
                return ([], trace is not null
                    ? $"{traceName}:{trace.Lines[bad.Index]}: {bad.Reason} (deployment {name})"
                    : $"the generated request #{bad.Index + 1} fits {models[0].Name} but not {name}: {bad.Reason}; " +
                      "put the deployment with the smallest buckets first, or cap the output length");
            }
        }

        return ([.. models.Select(m => new WhatIfResult(m.Name, WorkloadSimulation.Run(m.Model, requests, form.Replicas, slo)))], null);
    }
}
