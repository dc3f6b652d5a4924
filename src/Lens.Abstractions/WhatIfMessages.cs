namespace Lens.Abstractions;

/// <summary>A bucket set to predict from a profiled deployment's cost curves (issue 12); batch buckets default to the profile's.</summary>
[GenerateSerializer, Immutable, Alias("lens.WhatIfRequest.v1")]
public sealed record WhatIfRequest(
    [property: Id(0)] int[]? PrefillBuckets,
    [property: Id(1)] int[]? DecodeBuckets,
    [property: Id(2)] int[]? BatchBuckets = null);

/// <summary>
/// A workload (a trace, one of each per request, or a generated <see cref="Workload"/>) and what the advisor may search: at most
/// <see cref="MaxBuckets"/> prefill and decode buckets, prefixes of <see cref="BatchBuckets"/> (default powers of two up to the
/// profiled largest), replicas for <see cref="TargetRate"/> at the SLO with attainment <see cref="Goal"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("lens.AdviseRequest.v1")]
public sealed record AdviseRequest(
    [property: Id(0)] double[]? ArrivalMs = null,
    [property: Id(1)] int[]? InputLengths = null,
    [property: Id(2)] int[]? OutputLengths = null,
    [property: Id(3)] WorkloadSpec? Workload = null,
    [property: Id(4)] double? SloTtftMs = null,
    [property: Id(5)] double? SloTpotMs = null,
    [property: Id(6)] int MaxBuckets = 4,
    [property: Id(7)] int[]? BatchBuckets = null,
    [property: Id(8)] double? TargetRate = null,
    [property: Id(9)] double Goal = 0.99,
    [property: Id(10)] int Granularity = 16);
