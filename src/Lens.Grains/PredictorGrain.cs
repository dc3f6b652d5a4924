using System.Buffers;
using System.Diagnostics;
using Lens.Abstractions;
using Lens.Core;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace Lens.Grains;

/// <summary>
/// Answers predictions (method.md, "Composition and prediction") from a <see cref="DeploymentModel"/> composed of the deployment's
/// bucket snapshots, held by the silo's <see cref="ModelCache"/>, which deployment grains keep current by push: a re-profiled bucket is
/// used by the very next prediction, and a prediction makes no grain call. Holds no state of record; keyed by tenant. Heavy calls
/// (simulate, what-if, advise, capacity) capture the models and the request, then run on the silo's <see cref="HeavyWorkScheduler"/>,
/// never on the threads that answer predictions.
/// </summary>
[GrainType("predictor"), StatelessWorker]
public sealed class PredictorGrain(IOptions<LensGrainOptions> options, ModelCache models, HeavyWorkScheduler heavy, HeavyWorkBudget budget)
    : Grain, IPredictorGrain
{
    private readonly LensGrainOptions _options = options.Value;
    private readonly Dictionary<string, RefinedModel> _refined = new(StringComparer.Ordinal);
    private string? _tenant;

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
            p.E2eLowMs, p.E2eHighMs, version, model.Calibration.Level, p.TtftLowMs, p.TtftHighMs);
    }

    public async Task<SimulationReport> SimulateAsync(string deploymentKey, SimulateRequest request)
    {
        var (model, version) = await ModelAsync(deploymentKey, false);
        var max = _options.MaxSimulateRequests;
        return await HeavyAsync(() =>
        {
            var (workload, trace) = Guard(() => ServingWorkloads.Trace(model, request, max));
            var run = Guard(() => ServingSimulation.Simulate(model, trace, workload.MaxNumSeqs, workload.Replicas));
            return ServingWorkloads.Report(run, workload, request.IncludeRequests, version);
        });
    }

    public async Task<CapacityReport> CapacityAsync(CapacityRequest request)
    {
        // Keys are built from this activation's tenant: another tenant's deployments are simply not found.
        var keys = CapacityPlanning.Validate(_tenant ??= this.GetPrimaryKeyString(), request);
        var models = new DeploymentModel[keys.Length];
        for (var k = 0; k < keys.Length; k++)
        {
            (models[k], _) = await ModelAsync(keys[k], false);
        }

        return await HeavyAsync(() => Guard(() => CapacityPlanning.Plan(request, models)));
    }

    public async Task<string> WhatIfAsync(string deploymentKey, WhatIfRequest request)
    {
        var (model, _) = await ModelAsync(deploymentKey, false);
        var source = DeploymentKey.Parse(deploymentKey).Deployment;
        return await HeavyAsync(() => Guard(() => WhatIfAdvice.WhatIf(model, request, source)));
    }

    public async Task<string> AdviseAsync(string deploymentKey, AdviseRequest request)
    {
        var (model, _) = await ModelAsync(deploymentKey, false);
        var (max, source) = (_options.MaxAdviseRequests, DeploymentKey.Parse(deploymentKey).Deployment);
        return await HeavyAsync(() => Guard(() => WhatIfAdvice.Advise(model, request, max, source)));
    }

    public async Task<PredictManyResult> PredictManyAsync(string deploymentKey, PredictManyRequest request)
    {
        if (request?.InputLengths is not { } inputs || request.OutputLengths is not { } outputs)
        {
            throw LensException.Validation("request", "inputLengths and outputLengths are required");
        }

        if (inputs.Length != outputs.Length)
        {
            throw LensException.Validation("outputLengths", $"{inputs.Length} input lengths but {outputs.Length} output lengths; give one of each per request");
        }

        if (inputs.Length > _options.MaxPredictionsPerCall)
        {
            throw LensException.Validation("inputLengths", $"{inputs.Length} requests in one batch; at most {_options.MaxPredictionsPerCall} are allowed");
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
                model.PredictMany(inputs, outputs, buffer.AsSpan(0, n));
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
        return new PredictManyResult(e2e, ttft, tpot, low, high, version);
    }

    /// <summary>
    /// Runs heavy work on the silo's heavy-work threads under the tenant's budget. A call the HTTP API admitted carries its lease in the
    /// request context (<see cref="HeavyWorkBudget.AdmittedKey"/>); any other caller (the web console, an Orleans client) is admitted
    /// here, so every front end meets the same budget. Past it: <see cref="LensErrorKind.TooManyRequests"/>.
    /// </summary>
    private async Task<T> HeavyAsync<T>(Func<T> work)
    {
        using var lease = RequestContext.Get(HeavyWorkBudget.AdmittedKey) is true
            ? null
            : budget.TryEnter(_tenant ??= this.GetPrimaryKeyString(), out var refusal) ?? throw new LensException(LensErrorKind.TooManyRequests, refusal!);
        return await heavy.RunAsync(work);
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
    private async ValueTask<(DeploymentModel Model, long Version)> ModelAsync(string deploymentKeyText, bool refined)
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

    private async ValueTask<(DeploymentModel Model, long Version)> ProfiledModelAsync(string deploymentKeyText)
    {
        // The hot path: a key of this activation's tenant whose model the silo holds, found without parsing or allocating.
        if (deploymentKeyText is null)
        {
            throw LensException.Validation("deployment", "a deployment key is required");
        }

        _tenant ??= this.GetPrimaryKeyString();
        if (deploymentKeyText.Length > _tenant.Length && deploymentKeyText[_tenant.Length] == LensNames.Separator &&
            deploymentKeyText.StartsWith(_tenant, StringComparison.Ordinal) && models.TryGet(deploymentKeyText, out var held, out var version))
        {
            return (held, version);
        }

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
        if (key.Tenant != _tenant)
        {
            throw LensException.NotFound($"deployment '{key.Deployment}' does not exist on device '{key.Device}'");
        }

        return await models.GetAsync(key);
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

    private sealed record RefinedModel(long Version, long WindowVersion, DeploymentModel Model);
}
