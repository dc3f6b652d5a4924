using System.Diagnostics.Metrics;
using Lens.Abstractions;
using Lens.Grains;

namespace Lens.Service.Tests;

/// <summary>Counts the model caches' fetches (<c>lens.predictor.model_fetches</c>) of one deployment, in this process.</summary>
internal sealed class FetchCounter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly string _deployment;
    private long _count;

    public FetchCounter(DeploymentKey key)
    {
        _deployment = $"{key.Tenant}/{key.Device}/{key.Deployment}";
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == LensTelemetry.Name && instrument.Name == "lens.predictor.model_fetches")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == LensTelemetry.DeploymentTag && (string?)tag.Value == _deployment)
                {
                    Interlocked.Add(ref _count, value);
                }
            }
        });
        _listener.Start();
    }

    public long Count => Interlocked.Read(ref _count);

    public void Dispose() => _listener.Dispose();
}
