using Lens.Abstractions;

namespace Lens.Client;

/// <summary>
/// A typed wrapper over an Orleans <see cref="IClusterClient"/>, bound to one tenant: every grain key it builds starts with that
/// tenant, so it cannot address another tenant's data. Errors arrive as <see cref="LensException"/>.
/// </summary>
public sealed class LensClusterClient
{
    private readonly IClusterClient _client;

    public LensClusterClient(IClusterClient client, string tenant)
    {
        ArgumentNullException.ThrowIfNull(client);
        _client = client;
        Tenant = LensNames.Ensure(tenant, "tenant");
    }

    public string Tenant { get; }

    public Task<CreateDeploymentResult> CreateDeploymentAsync(string device, DeploymentSpec spec) =>
        DeploymentGrains.CreateAsync(_client, new DeviceKey(Tenant, device), spec);

    public Task<DeploymentInfo> GetDeploymentAsync(string device, string deployment) => Deployment(device, deployment).GetAsync();

    /// <summary>The tenant's devices (each listed from its first deployment on) with their deployment counts, sorted by name.</summary>
    public Task<DeviceSummary[]> ListDevicesAsync() => _client.GetGrain<IDeviceDirectoryGrain>(Tenant).ListAsync();

    public Task<DeploymentInfo[]> ListDeploymentsAsync(string device) => DeploymentGrains.ListAsync(_client, new DeviceKey(Tenant, device));

    public Task<ProfileProgress> StartProfileAsync(string device, string deployment, string? bucket = null) =>
        Deployment(device, deployment).StartProfileAsync(new ProfileRequest(bucket));

    public Task<ProfileProgress> GetProfileProgressAsync(string device, string deployment) => Deployment(device, deployment).GetProfileProgressAsync();

    /// <summary>Polls the progress every <paramref name="pollInterval"/> until the run finishes or <paramref name="cancellationToken"/> fires.</summary>
    public async Task<ProfileProgress> WaitForProfileAsync(string device, string deployment, TimeSpan pollInterval,
        CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var progress = await GetProfileProgressAsync(device, deployment);
            if (progress.IsFinished || progress.State == ProfileState.None)
            {
                return progress;
            }

            await Task.Delay(pollInterval, cancellationToken);
        }
    }

    public Task<IntakeResult> ImportMeasurementsAsync(string device, string deployment, MeasurementBatch batch) =>
        Deployment(device, deployment).ImportMeasurementsAsync(batch);

    public Task<IntakeResult> ReportTelemetryAsync(string device, string deployment, MeasurementBatch batch) =>
        Deployment(device, deployment).ReportTelemetryAsync(batch);

    public Task<BucketSnapshot[]> GetBucketsAsync(string device, string deployment) => Deployment(device, deployment).GetBucketsAsync();

    /// <param name="bucket">The bucket's name as <see cref="DeploymentInfo.Buckets"/> lists it (e.g. <c>decode-256</c>).</param>
    public Task<MeasurementRecord[]> GetBucketMeasurementsAsync(string device, string deployment, string bucket) =>
        _client.GetGrain<IBucketGrain>(new DeploymentKey(Tenant, device, deployment).BucketGrainKey(bucket)).GetMeasurementsAsync();

    /// <summary>Per-bucket health against observed latencies: observed MAPE, shift, band, drift counts, staleness, last profile.</summary>
    public Task<DeploymentHealth> GetHealthAsync(string device, string deployment) => Deployment(device, deployment).GetHealthAsync();

    /// <summary>The deployment's drift analyses over time, oldest first: the newest <paramref name="last"/> (all when null).</summary>
    public Task<DeploymentHealthHistory> GetHealthHistoryAsync(string device, string deployment, int? last = null) =>
        Deployment(device, deployment).GetHealthHistoryAsync(last);

    /// <summary>Live-traffic monitoring from the deployment's OTLP spans: requests received, analyses, the latest window's cells.</summary>
    public async Task<TrafficStatus> GetTrafficAsync(string device, string deployment)
    {
        await Deployment(device, deployment).GetAsync(); // not found for a deployment the tenant lacks
        return await _client.GetGrain<ITrafficMonitorGrain>(new DeploymentKey(Tenant, device, deployment).Format()).GetStatusAsync();
    }

    /// <param name="refined">Refine the profiled model with the deployment's observed latencies first (opt-in).</param>
    public Task<PredictionResult> PredictAsync(string device, string deployment, int inputLength, int outputLength, bool refined = false) =>
        Predictor.PredictAsync(Key(device, deployment), new PredictRequest(inputLength, outputLength, refined));

    /// <param name="refined">Refine the profiled model with the deployment's observed latencies first (opt-in).</param>
    public Task<PredictManyResult> PredictManyAsync(string device, string deployment, int[] inputLengths, int[] outputLengths,
        bool refined = false) =>
        Predictor.PredictManyAsync(Key(device, deployment), new PredictManyRequest(inputLengths, outputLengths, refined));

    public Task<string> GetModelJsonAsync(string device, string deployment) => Predictor.GetModelJsonAsync(Key(device, deployment));

    /// <summary>Serves a trace or a generated workload on the deployment's model with continuous batching.</summary>
    public Task<SimulationReport> SimulateAsync(string device, string deployment, SimulateRequest request) =>
        Predictor.SimulateAsync(Key(device, deployment), request);

    /// <summary>Capacity planning over the tenant's deployments (prices from the request; the HTTP API adds the tenant's settings).</summary>
    public Task<CapacityReport> CapacityAsync(CapacityRequest request) => Predictor.CapacityAsync(request);

    /// <summary>The model JSON of a bucket set never profiled, read from the deployment's cost curves.</summary>
    public Task<string> WhatIfAsync(string device, string deployment, WhatIfRequest request) => Predictor.WhatIfAsync(Key(device, deployment), request);

    /// <summary>The advisor's recommendation for a workload, as the advice document's JSON.</summary>
    public Task<string> AdviseAsync(string device, string deployment, AdviseRequest request) => Predictor.AdviseAsync(Key(device, deployment), request);

    /// <summary>Requests started together: each one's TTFT and E2E.</summary>
    public Task<SimulationReport> PredictStaticBatchAsync(string device, string deployment, StaticBatchRequest request) =>
        Predictor.SimulateAsync(Key(device, deployment), new SimulateRequest(new double[request.InputLengths?.Length ?? 0], request.InputLengths,
            request.OutputLengths, MaxNumSeqs: request.MaxNumSeqs, IncludeRequests: true));

    private IPredictorGrain Predictor => _client.GetGrain<IPredictorGrain>(Tenant);

    /// <summary>The deployment's grain; a name no deployment can have is one that does not exist.</summary>
    private IDeploymentGrain Deployment(string device, string deployment)
    {
        var key = new DeviceKey(Tenant, device);
        return LensNames.IsValid(deployment)
            ? DeploymentGrains.Get(_client, key.Deployment(deployment))
            : throw LensException.NotFound($"deployment '{deployment}' does not exist on device '{device}'");
    }

    private string Key(string device, string deployment) => new DeploymentKey(Tenant, device, deployment).Format();
}
