using System.Globalization;
using Lens.Abstractions;
using Lens.Core;

namespace Lens.WebConsole;

/// <summary>
/// A workload for the what-if page: Poisson arrivals at a rate, or a trace (<c>arrival_ms,input_len,output_len</c>). The page sends it
/// to the predictor grains as the HTTP API's simulate and advise bodies; the grains generate, validate and bound it (request count,
/// replicas, SLO), so the page has the service's limits and its error messages.
/// </summary>
public sealed class WorkloadForm
{
    public const int MaxTraceBytes = 4 * 1024 * 1024;
    public const int MaxDeployments = 6;

    public double Rate { get; set; } = 2;

    public int Count { get; set; } = 1000;

    public int? MaxOutput { get; set; }

    public int Seed { get; set; }

    public int Replicas { get; set; } = 1;

    public double? SloTtftMs { get; set; } = 500;

    public double? SloTpotMs { get; set; } = 50;

    /// <summary>
    /// The simulate request each chosen deployment's predictor grain gets (the body of <c>POST .../simulate</c>): the uploaded
    /// <paramref name="trace"/> as it is, or a generated workload whose lengths are drawn uniformly over what <paramref name="lengthsFrom"/>
    /// serves (the first chosen deployment), written out so that every deployment is given the same requests.
    /// </summary>
    public SimulateRequest ToSimulateRequest(CsvRows<TraceRequest>? trace, DeploymentSpec lengthsFrom)
    {
        var (arrivals, inputs, outputs) = Columns(trace);
        return new SimulateRequest(arrivals, inputs, outputs, trace is null ? Workload(lengthsFrom) : null, Replicas: Replicas,
            SloTtftMs: SloTtftMs, SloTpotMs: SloTpotMs);
    }

    /// <summary>The generated workload: Poisson arrivals, prompts uniform over 1..min(pm, dn - 1), outputs over 1..(cap or dn - 1).</summary>
    public WorkloadSpec Workload(DeploymentSpec lengthsFrom)
    {
        ArgumentNullException.ThrowIfNull(lengthsFrom);
        var buckets = new BucketSet(lengthsFrom.PrefillBuckets, lengthsFrom.DecodeBuckets);
        var maxInput = Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1);
        var maxOutput = MaxOutput ?? buckets.MaxSequence - 1;
        return new WorkloadSpec(Rate, Count, InputDist: Uniform(maxInput), OutputDist: Uniform(maxOutput), Seed: Seed);
    }

    /// <summary>A trace's columns (nulls for none).</summary>
    internal static (double[]? Arrivals, int[]? Inputs, int[]? Outputs) Columns(CsvRows<TraceRequest>? trace) =>
        trace is null ? (null, null, null)
            : ([.. trace.Rows.Select(r => r.ArrivalMs)], [.. trace.Rows.Select(r => r.InputLength)], [.. trace.Rows.Select(r => r.OutputLength)]);

    private static string Uniform(int max) => string.Create(CultureInfo.InvariantCulture, $"uniform:1-{max}");
}

/// <summary>One deployment's result of a what-if run: the predictor grain's simulation report.</summary>
public sealed record WhatIfResult(string Deployment, SimulationReport Report);
