namespace Lens.Core;

/// <summary>
/// Counts the requests of a simulation that miss the objectives as soon as that is known (TTFT at admission, TPOT at the last
/// token), so that a capacity search can stop a run once the fleet cannot reach the attainment any more. A request misses exactly
/// when <see cref="ServedRequest.Meets"/> is false.
/// </summary>
internal sealed class MissBudget
{
    private readonly ServiceObjectives _slo;
    private readonly int _allowed;
    private int _misses;

    /// <summary>For <paramref name="requests"/> requests of which at least <paramref name="attainment"/> must meet <paramref name="slo"/>.</summary>
    public MissBudget(ServiceObjectives slo, double attainment, int requests)
    {
        _slo = slo;
        // The most misses m with (n - m) / n >= attainment, in the same floating-point comparison as the attainment itself.
        var m = (int)Math.Floor((1 - attainment) * requests);
        while (m < requests && (double)(requests - (m + 1)) / requests >= attainment)
        {
            m++;
        }

        while (m >= 0 && (double)(requests - m) / requests < attainment)
        {
            m--;
        }

        _allowed = m;
    }

    public bool Exhausted => _misses > _allowed;

    /// <summary>A request was admitted: its TTFT is known (and, with one output token, everything).</summary>
    public void Admitted(in ServedRequest request)
    {
        if (!(request.TtftMs <= _slo.TtftMs))
        {
            _misses++;
        }
    }

    /// <summary>A request with decode steps finished: its TPOT is known.</summary>
    public void Finished(in ServedRequest request)
    {
        if (request.TtftMs <= _slo.TtftMs && !(request.TpotMs <= _slo.TpotMs))
        {
            _misses++;
        }
    }
}
