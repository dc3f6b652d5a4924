using System.Diagnostics;

namespace Lens.Engine;

/// <summary>
/// The engine's running counts of work (<see cref="EngineCounters"/>): written by the one thread that runs steps at a time (under
/// the scheduler's gate), read from any thread.
/// </summary>
internal sealed class EngineWork
{
    private long _requests, _prefillPasses, _prefillRows, _decodeSteps, _attentionPositions, _cacheMoves, _cacheHandoffs, _slowdownTicks;
    private long _paddedRows;

    /// <summary>A consistent-enough copy for tests and reports (each count read atomically).</summary>
    public EngineCounters Snapshot() => new(
        Interlocked.Read(ref _requests), Interlocked.Read(ref _prefillPasses), Interlocked.Read(ref _prefillRows),
        Interlocked.Read(ref _decodeSteps), Interlocked.Read(ref _attentionPositions), Interlocked.Read(ref _cacheMoves),
        Interlocked.Read(ref _cacheHandoffs), Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _slowdownTicks)).TotalMilliseconds,
        Interlocked.Read(ref _paddedRows));

    /// <summary>A request completed (warm-up runs none).</summary>
    public void Request() => _requests++;

    /// <summary>A prefill pass over <paramref name="paddedLength"/> rows, its slowdown adding <paramref name="slowdownTicks"/>
    /// (<see cref="Stopwatch"/> ticks).</summary>
    public void Prefill(int paddedLength, long slowdownTicks)
    {
        _prefillPasses++;
        _prefillRows += paddedLength;
        _slowdownTicks += slowdownTicks;
    }

    /// <summary>A decode or mixed step of <paramref name="batch"/> rows (<paramref name="rows"/> real) whose heads scored
    /// <paramref name="positions"/> KV positions in all (per head and layer), its slowdown adding <paramref name="slowdownTicks"/>;
    /// returns its index, from 0.</summary>
    public long DecodeStep(int batch, int rows, long positions, long slowdownTicks)
    {
        var index = _decodeSteps;
        _decodeSteps++;
        _attentionPositions += positions;
        _paddedRows += batch - rows;
        _slowdownTicks += slowdownTicks;
        return index;
    }

    /// <summary>A copy of the KV cache made before a step.</summary>
    public void Copy(CacheCopy copy)
    {
        if (copy == CacheCopy.HandOff)
        {
            _cacheHandoffs++;
        }
        else if (copy == CacheCopy.Move)
        {
            _cacheMoves++;
        }
    }
}
