namespace Lens.Abstractions;

/// <summary>
/// A request to predict: <c>I</c> prompt tokens, <c>O</c> output tokens (the first produced by prefill). With <see cref="Refined"/>
/// the profiled model is first refined with the deployment's observed latencies (<c>ModelRefinement.Refine</c> over the monitor's
/// window); opt-in, since it trades the profile's isolation for production's conditions.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.PredictRequest.v1")]
public sealed record PredictRequest([property: Id(0)] int InputLength, [property: Id(1)] int OutputLength, [property: Id(2)] bool Refined = false);

/// <summary>
/// A prediction (ms, method.md "The model"): <c>E2E = A[pre(I)] + sum S[dec(I + k)]</c>, TTFT, mean TPOT (null when <c>O = 1</c>)
/// and prediction intervals of one request's E2E and TTFT at <see cref="IntervalLevel"/> (e.g. 0.95: each end misses at most 2.5% of
/// requests; calibrated on the profile's repeats, never below zero). <see cref="ModelVersion"/> is the version of the deployment's fitted
/// data used. Clients of servers from before the level existed read 0.95, what those servers claimed.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.PredictionResult.v1")]
public sealed record PredictionResult(
    [property: Id(0)] int InputLength,
    [property: Id(1)] int OutputLength,
    [property: Id(2)] double E2eMs,
    [property: Id(3)] double TtftMs,
    [property: Id(4)] double? TpotMs,
    [property: Id(5)] double E2eLowMs,
    [property: Id(6)] double E2eHighMs,
    [property: Id(7)] long ModelVersion,
    [property: Id(8)] double IntervalLevel = 0.95,
    [property: Id(9)] double? TtftLowMs = null,
    [property: Id(10)] double? TtftHighMs = null);

/// <summary>Many requests to predict, as two parallel arrays (Orleans carries it in <see cref="BatchCodec"/>'s binary form).</summary>
[Immutable, Alias("lens.PredictManyRequest.v2")]
public sealed record PredictManyRequest(int[] InputLengths, int[] OutputLengths, bool Refined = false);

/// <summary>
/// Batch predictions as parallel arrays, in request order (<see cref="TpotMs"/> null where <c>O = 1</c>); Orleans carries it in
/// <see cref="BatchCodec"/>'s binary form.
/// </summary>
[Immutable, Alias("lens.PredictManyResult.v2")]
public sealed record PredictManyResult(double[] E2eMs, double[] TtftMs, double?[] TpotMs, double[] E2eLowMs, double[] E2eHighMs, long ModelVersion);

/// <summary>
/// What a cached model is valid for: the deployment's bucket context and its model version (bumped whenever any bucket's fitted data
/// change).
/// </summary>
/// <param name="Estimates">Cells whose cost the model takes from live traffic instead of its buckets' fits (null: none).</param>
[GenerateSerializer, Immutable, Alias("lens.ModelStamp.v1")]
public sealed record ModelStamp([property: Id(0)] BucketContext Context, [property: Id(1)] long Version,
    [property: Id(2)] TrafficEstimateRecord[]? Estimates = null);

/// <summary>
/// A model cache's subscription to a deployment grain (<c>IDeploymentGrain.SubscribeModelAsync</c>): the deployment's current stamp,
/// the silo the deployment activation lives on (a cache forgets the subscription when that silo leaves the cluster) and the
/// activation's id (versions are compared only within one activation).
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.ModelSubscription.v1")]
public sealed record ModelSubscription([property: Id(0)] ModelStamp Stamp, [property: Id(1)] SiloAddress Host, [property: Id(2)] Guid Activation);

/// <summary>A generated workload: arrivals (Poisson, or Gamma gaps with <see cref="Burstiness"/> as their coefficient of variation)
/// and length distributions (<c>fixed:N</c>, <c>uniform:MIN-MAX</c>, <c>normal:MEAN,SD</c>, <c>lognormal:MEDIAN,SIGMA</c>;
/// default uniform over what the buckets serve).</summary>
[GenerateSerializer, Immutable, Alias("lens.WorkloadSpec.v1")]
public sealed record WorkloadSpec(
    [property: Id(0)] double RequestsPerSecond,
    [property: Id(1)] int Count,
    [property: Id(2)] double Burstiness = 1,
    [property: Id(3)] string? InputDist = null,
    [property: Id(4)] string? OutputDist = null,
    [property: Id(5)] int Seed = 0);

/// <summary>
/// A serving simulation (method.md, "Batched serving"): a trace (<see cref="ArrivalMs"/>, <see cref="InputLengths"/>,
/// <see cref="OutputLengths"/>, one of each per request) or a generated <see cref="Workload"/>, on <see cref="Replicas"/> replicas
/// with at most <see cref="MaxNumSeqs"/> sequences in flight each (default: the largest batch bucket). With both objectives the
/// report gives SLO attainment and goodput; <see cref="IncludeRequests"/> adds each request's TTFT, E2E and TPOT in trace order.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.SimulateRequest.v1")]
public sealed record SimulateRequest(
    [property: Id(0)] double[]? ArrivalMs = null,
    [property: Id(1)] int[]? InputLengths = null,
    [property: Id(2)] int[]? OutputLengths = null,
    [property: Id(3)] WorkloadSpec? Workload = null,
    [property: Id(4)] int? MaxNumSeqs = null,
    [property: Id(5)] int Replicas = 1,
    [property: Id(6)] double? SloTtftMs = null,
    [property: Id(7)] double? SloTpotMs = null,
    [property: Id(8)] bool IncludeRequests = false);

/// <summary>Percentiles of one latency (ms); null where no request had the figure (TPOT when every O = 1).</summary>
[GenerateSerializer, Immutable, Alias("lens.LatencySummary.v1")]
public sealed record LatencySummary([property: Id(0)] double? P50, [property: Id(1)] double? P90, [property: Id(2)] double? P99, [property: Id(3)] double? Max);

/// <summary>What a simulated deployment did with a workload (queueing included).</summary>
[GenerateSerializer, Immutable, Alias("lens.SimulationReport.v1")]
public sealed record SimulationReport(
    [property: Id(0)] int Requests,
    [property: Id(1)] int Replicas,
    [property: Id(2)] int MaxNumSeqs,
    [property: Id(3)] LatencySummary Ttft,
    [property: Id(4)] LatencySummary Tpot,
    [property: Id(5)] LatencySummary E2e,
    [property: Id(6)] LatencySummary QueueWait,
    [property: Id(7)] double RequestsPerSecond,
    [property: Id(8)] double OutputTokensPerSecond,
    [property: Id(9)] double Utilization,
    [property: Id(10)] double? SloAttainment,
    [property: Id(11)] double? GoodputPerSecond,
    [property: Id(12)] long DecodeSteps,
    [property: Id(13)] long ModelVersion,
    [property: Id(14)] double[]? TtftMs = null,
    [property: Id(15)] double[]? E2eMs = null,
    [property: Id(16)] double?[]? TpotMs = null);

/// <summary>Requests started together on one replica, admitted in the given order (at most <see cref="MaxNumSeqs"/> at once).</summary>
[GenerateSerializer, Immutable, Alias("lens.StaticBatchRequest.v1")]
public sealed record StaticBatchRequest([property: Id(0)] int[] InputLengths, [property: Id(1)] int[] OutputLengths, [property: Id(2)] int? MaxNumSeqs = null);
