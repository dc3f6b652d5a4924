using System.Buffers;
using System.Diagnostics;
using Lens.Abstractions;
using Lens.Core;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace Lens.Grains;

/// <summary>
/// Answers predictions (method.md, "Composition and prediction") from a <see cref="DeploymentModel"/> composed of the deployment's
/// bucket snapshots. Each activation caches models by the deployment's model version and checks that version with the device on
/// every call, so a re-profiled bucket is used at once. Holds no state of record; keyed by tenant.
/// </summary>
[GrainType("predictor"), StatelessWorker]
public sealed class PredictorGrain(IOptions<LensGrainOptions> options) : Grain, IPredictorGrain
{
    private readonly LensGrainOptions _options = options.Value;
    private readonly Dictionary<string, CachedModel> _cache = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RefinedModel> _refined = new(StringComparer.Ordinal);

    public async Task<PredictionResult> PredictAsync(string deploymentKey, PredictRequest request)
    {
        if (request is null)
        {
            throw LensException.Validation("request", "inputLength and outputLength are required");
        }

        var started = Stopwatch.GetTimestamp();
        var (model, version) = await ModelAsync(deploymentKey, request.Refined);
        var p = Guard(() => model.Predict(request.InputLength, request.OutputLength));
        LensTelemetry.Predictions.Add(1);
        LensTelemetry.PredictionDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        return new PredictionResult(request.InputLength, request.OutputLength, p.E2eMs, p.TtftMs, double.IsNaN(p.TpotMs) ? null : p.TpotMs,
            p.E2eLowMs, p.E2eHighMs, version);
    }

    public async Task<BatchPredictionResult> PredictBatchAsync(string deploymentKey, BatchPredictRequest request)
    {
        if (request?.InputLengths is not { } inputs || request.OutputLengths is not { } outputs)
        {
            throw LensException.Validation("request", "inputLengths and outputLengths are required");
        }

        if (inputs.Length != outputs.Length)
        {
            throw LensException.Validation("outputLengths", $"{inputs.Length} input lengths but {outputs.Length} output lengths; give one of each per request");
        }

        if (inputs.Length > _options.MaxPredictBatch)
        {
            throw LensException.Validation("inputLengths", $"{inputs.Length} requests in one batch; at most {_options.MaxPredictBatch} are allowed");
        }

        var started = Stopwatch.GetTimestamp();
        var (model, version) = await ModelAsync(deploymentKey, request.Refined);
        var n = inputs.Length;
        var e2e = new double[n];
        var ttft = new double[n];
        var tpot = new double?[n];
        var low = new double[n];
        var high = new double[n];
        var buffer = ArrayPool<Prediction>.Shared.Rent(Math.Max(n, 1));
        try
        {
            Guard(() =>
            {
                model.PredictBatch(inputs, outputs, buffer.AsSpan(0, n));
                return 0;
            });
            for (var i = 0; i < n; i++)
            {
                var p = buffer[i];
                e2e[i] = p.E2eMs;
                ttft[i] = p.TtftMs;
                tpot[i] = double.IsNaN(p.TpotMs) ? null : p.TpotMs;
                low[i] = p.E2eLowMs;
                high[i] = p.E2eHighMs;
            }
        }
        finally
        {
            ArrayPool<Prediction>.Shared.Return(buffer);
        }

        LensTelemetry.Predictions.Add(n);
        LensTelemetry.PredictionDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        return new BatchPredictionResult(e2e, ttft, tpot, low, high, version);
    }

    public async Task<string> GetModelJsonAsync(string deploymentKey)
    {
        var (model, _) = await ModelAsync(deploymentKey, refined: false);
        return ModelJson.Serialize(model);
    }

    /// <summary>
    /// The deployment's current model; with <paramref name="refined"/>, refined by the observations in its monitor's window
    /// (<see cref="ModelRefinement.Refine"/>, observation noise <see cref="LensGrainOptions.RefinementNoise"/>), cached by both versions.
    /// </summary>
    private async Task<(DeploymentModel Model, long Version)> ModelAsync(string deploymentKeyText, bool refined)
    {
        var (model, version) = await ProfiledModelAsync(deploymentKeyText);
        if (!refined)
        {
            return (model, version);
        }

        var key = DeploymentKey.Parse(deploymentKeyText);
        var window = await GrainFactory.GetGrain<IDeploymentMonitorGrain>(key.Format()).GetWindowAsync();
        var cacheKey = "refined|" + key.Format();
        if (_refined.TryGetValue(cacheKey, out var cached) && cached.Version == version && cached.WindowVersion == window.Version)
        {
            return (cached.Model, version);
        }

        var observations = window.Observations.Select(o => new Observation(o.InputLength, o.OutputLength, o.E2eMs, o.TtftMs)).ToArray();
        var result = ModelRefinement.Refine(model, observations, _options.RefinementNoise);
        if (_refined.Count >= _options.PredictorCacheSize && !_refined.ContainsKey(cacheKey))
        {
            _refined.Clear();
        }

        _refined[cacheKey] = new RefinedModel(version, window.Version, result);
        return (result, version);
    }

    private async Task<(DeploymentModel Model, long Version)> ProfiledModelAsync(string deploymentKeyText)
    {
        DeploymentKey key;
        try
        {
            key = DeploymentKey.Parse(deploymentKeyText);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentNullException or LensException)
        {
            throw LensException.Validation("deployment", ex.Message);
        }

        // The tenant in the key is the authority; this activation only serves its own tenant.
        if (key.Tenant != this.GetPrimaryKeyString())
        {
            throw LensException.NotFound($"deployment '{key.Deployment}' does not exist on device '{key.Device}'");
        }

        var cacheKey = key.Format();
        var now = Stopwatch.GetTimestamp();
        if (_options.ModelVersionTtl > TimeSpan.Zero && _cache.TryGetValue(cacheKey, out var trusted) &&
            Stopwatch.GetElapsedTime(trusted.CheckedAt, now) < _options.ModelVersionTtl)
        {
            return (trusted.Model, trusted.Version); // checked recently enough: no grain call
        }

        var stamp = await GrainFactory.GetGrain<IDeviceGrain>(key.DeviceKey.Format()).GetModelStampAsync(key.Deployment);
        if (_cache.TryGetValue(cacheKey, out var cached) && cached.Version == stamp.Version && cached.Context.SameAs(stamp.Context))
        {
            if (_options.ModelVersionTtl > TimeSpan.Zero)
            {
                _cache[cacheKey] = cached with { CheckedAt = now }; // only a TTL reads the time: no allocation per call without one
            }

            return (cached.Model, cached.Version);
        }

        var buckets = stamp.Context.ToBucketSet();
        var snapshots = await Task.WhenAll(buckets.AllBuckets().Select(b => GrainFactory.GetGrain<IBucketGrain>(key.Bucket(b).Format()).GetSnapshotAsync()));
        var model = DeploymentModel.Compose(buckets, snapshots.Select(s => s.ToFit()), stamp.Context.ToStatistic());
        if (_cache.Count >= _options.PredictorCacheSize && !_cache.ContainsKey(cacheKey))
        {
            _cache.Clear(); // crude bound: models are cheap to rebuild from snapshots
        }

        _cache[cacheKey] = new CachedModel(stamp.Version, stamp.Context, model, now);
        return (model, stamp.Version);
    }

    private static T Guard<T>(Func<T> predict)
    {
        try
        {
            return predict();
        }
        catch (RequestOutOfRangeException ex)
        {
            throw new LensException(LensErrorKind.OutOfRange, ex.Message);
        }
        catch (UnfittedBucketException ex)
        {
            throw new LensException(LensErrorKind.Unfitted, ex.Message);
        }
    }

    private sealed record CachedModel(long Version, BucketContext Context, DeploymentModel Model, long CheckedAt);

    private sealed record RefinedModel(long Version, long WindowVersion, DeploymentModel Model);
}
