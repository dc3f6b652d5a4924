using Lens.Core;

namespace Lens.Measurement;

/// <summary>
/// A device simulated by a fitted <see cref="DeploymentModel"/>: each request "takes" the model's E2E and TTFT, times a seeded
/// one-sided slowdown of up to <paramref name="noise"/> (interference only ever slows a request). No waiting: the latency is
/// reported, not spent. For what-if studies and for testing the service's profiling loop quickly and deterministically. Requests and
/// groups are checked, and groups served, under the model's scheduling policy.
/// </summary>
public sealed class ModelReplayBackend(DeploymentModel model, double noise = 0, int seed = 0) : IMeasurementBackend
{
    private readonly Random _random = new(seed);
    private readonly Lock _gate = new();

    public string Describe => model.Policy.IsDefault ? $"replay of a fitted model ({model.Buckets})" : $"replay of a fitted {model.Policy.Name} model ({model.Buckets})";

    /// <summary>Multiplies the step cost of one decode bucket, to simulate drift of that bucket alone.</summary>
    public IReadOnlyDictionary<int, double> DecodeSlowdown { get; init; } = new Dictionary<int, double>();

    public Task<TimedRequest> MeasureAsync(int inputLength, int outputLength, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (model.CheckRequest(inputLength, outputLength) is { } reason)
        {
            throw new MeasurementFailedException(reason, isTransient: false);
        }

        var p = model.Predict(inputLength, outputLength);
        var e2e = p.E2eMs;
        foreach (var share in model.Breakdown(inputLength, outputLength))
        {
            if (share.Bucket.Kind == BucketKind.Decode && DecodeSlowdown.TryGetValue(share.Bucket.Edge, out var factor))
            {
                e2e += share.Ms * (factor - 1);
            }
        }

        double jitter;
        lock (_gate)
        {
            jitter = 1 + (noise * _random.NextDouble());
        }

        return Task.FromResult(new TimedRequest(inputLength, outputLength, e2e * jitter, p.TtftMs * jitter));
    }

    /// <summary>
    /// A group of <paramref name="batch"/> identical requests released at once, as the model's continuous-batching scheduler serves them
    /// (<see cref="ServingSimulation.StaticBatch"/>): prefills in turn, then every decode step at the group's batch bucket.
    /// </summary>
    public Task<IReadOnlyList<TimedRequest>> MeasureGroupAsync(int inputLength, int outputLength, int batch, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (model.CheckRequest(inputLength, outputLength) is { } reason)
        {
            throw new MeasurementFailedException(reason, isTransient: false);
        }

        if (batch < 1 || batch > model.MaxNumSeqs)
        {
            throw new MeasurementFailedException($"a group of {batch} is outside the replayed model's max_num_seqs: allowed 1..{model.MaxNumSeqs}", false);
        }

        var run = ServingSimulation.StaticBatch(model, [.. Enumerable.Repeat(new RequestPair(inputLength, outputLength), batch)]);
        double jitter;
        lock (_gate)
        {
            jitter = 1 + (noise * _random.NextDouble());
        }

        return Task.FromResult<IReadOnlyList<TimedRequest>>(
            [.. run.Requests.Select(r => new TimedRequest(inputLength, outputLength, r.E2eMs * jitter, r.TtftMs * jitter))]);
    }
}
