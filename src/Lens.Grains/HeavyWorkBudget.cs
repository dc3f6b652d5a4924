using Microsoft.Extensions.Options;

namespace Lens.Grains;

/// <summary>
/// One per silo: admits heavy calls (simulate, advise, what-if, and every route that opts in) within a budget, so that one tenant
/// cannot fill the <see cref="HeavyWorkScheduler"/>'s queue: at most <see cref="LensGrainOptions.MaxHeavyCallsPerTenant"/> running or
/// waiting per tenant, and <see cref="LensGrainOptions.MaxHeavyCallsPerSilo"/> for all tenants together. A refused call costs nothing
/// (over HTTP its body is not read; the web console and Orleans clients are admitted by the predictor grain itself) and is counted in <c>lens.heavy.refusals</c>, tagged with which bound refused it (<c>tenant</c>, <c>silo</c>).
/// The budget is per silo: in a cluster each silo admits its own.
/// </summary>
public sealed class HeavyWorkBudget(IOptions<LensGrainOptions> options)
{
    /// <summary>
    /// Request-context key set by a front end that already admitted the call (the HTTP route's filter), so the grain does not count
    /// it twice.
    /// </summary>
    public const string AdmittedKey = "lens.heavy-admitted";

    private readonly LensGrainOptions _options = options.Value;
    private readonly Dictionary<string, int> _byTenant = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private int _total;

    /// <summary>Heavy calls admitted and not yet finished, all tenants together.</summary>
    public int InFlight
    {
        get
        {
            lock (_gate)
            {
                return _total;
            }
        }
    }

    /// <summary>
    /// Admits one heavy call of <paramref name="tenant"/>: a lease to dispose when the call ends, or null with
    /// <paramref name="refusal"/> naming the bound that was reached.
    /// </summary>
    public IDisposable? TryEnter(string tenant, out string? refusal)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        lock (_gate)
        {
            var mine = _byTenant.GetValueOrDefault(tenant);
            if (mine >= _options.MaxHeavyCallsPerTenant)
            {
                refusal = $"tenant '{tenant}' has {mine} heavy calls (simulate, advise, what-if) running or waiting on this server, " +
                          $"the most Lens:Grains:MaxHeavyCallsPerTenant ({_options.MaxHeavyCallsPerTenant}) allows; retry when one has finished";
                LensTelemetry.HeavyRefusals.Add(1, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, "tenant"));
                return null;
            }

            if (_total >= _options.MaxHeavyCallsPerSilo)
            {
                refusal = $"this server has {_total} heavy calls (simulate, advise, what-if) running or waiting, the most " +
                          $"Lens:Grains:MaxHeavyCallsPerSilo ({_options.MaxHeavyCallsPerSilo}) allows; retry shortly";
                LensTelemetry.HeavyRefusals.Add(1, new KeyValuePair<string, object?>(LensTelemetry.ReasonTag, "silo"));
                return null;
            }

            _byTenant[tenant] = mine + 1;
            _total++;
        }

        refusal = null;
        return new Lease(this, tenant);
    }

    private void Leave(string tenant)
    {
        lock (_gate)
        {
            var left = _byTenant[tenant] - 1;
            if (left == 0)
            {
                _byTenant.Remove(tenant);
            }
            else
            {
                _byTenant[tenant] = left;
            }

            _total--;
        }
    }

    private sealed class Lease(HeavyWorkBudget budget, string tenant) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                budget.Leave(tenant);
            }
        }
    }
}
