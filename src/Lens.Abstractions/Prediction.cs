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
[Immutable, Alias("lens.BatchPredictRequest.v2")]
public sealed record BatchPredictRequest(int[] InputLengths, int[] OutputLengths, bool Refined = false);

/// <summary>
/// Batch predictions as parallel arrays, in request order (<see cref="TpotMs"/> null where <c>O = 1</c>); Orleans carries it in
/// <see cref="BatchCodec"/>'s binary form.
/// </summary>
[Immutable, Alias("lens.BatchPredictionResult.v2")]
public sealed record BatchPredictionResult(double[] E2eMs, double[] TtftMs, double?[] TpotMs, double[] E2eLowMs, double[] E2eHighMs, long ModelVersion);

/// <summary>
/// What a cached model is valid for: the deployment's bucket context and its model version (bumped whenever any bucket's fitted data
/// change).
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.ModelStamp.v1")]
public sealed record ModelStamp([property: Id(0)] BucketContext Context, [property: Id(1)] long Version);

/// <summary>
/// A model cache's subscription to a device grain (<c>IDeviceGrain.SubscribeModelAsync</c>): the deployment's current stamp, the silo the
/// device activation lives on (a cache forgets the subscription when that silo leaves the cluster) and the activation's id (versions
/// are compared only within one activation).
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.ModelSubscription.v1")]
public sealed record ModelSubscription([property: Id(0)] ModelStamp Stamp, [property: Id(1)] SiloAddress Host, [property: Id(2)] Guid Activation);
