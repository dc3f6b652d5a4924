namespace Lens.Core;

/// <summary>
/// One replica's decoding sequences (at most max_num_seqs). A sequence's length (or context) at replica step <c>g</c> is
/// <c>base + g</c>, so a step changes nothing here: only admissions and departures do. The next departure and the longest sequence
/// come from heaps (the longest with lazy deletion), so an admission or a departure costs O(log n), not a scan of everyone in flight;
/// the live sequences are also listed densely for the scans that need them all (paged block counts).
/// </summary>
internal sealed class FlightSet
{
    private readonly int[] _ids, _blocks, _serial, _live, _where, _free;
    private readonly long[] _finish, _base; // replica step count after which the sequence is done; length at step g is base + g
    private readonly PriorityQueue<int, long> _finishing;                      // slots by finish
    private readonly PriorityQueue<(int Slot, int Serial), long> _longest;     // slots by -base; entries of freed slots are stale
    private readonly List<int> _finished;
    private readonly List<long> _finishedBases;
    private int _freeCount, _serials;

    public FlightSet(int capacity)
    {
        (_ids, _blocks, _serial, _live, _where, _free) = (new int[capacity], new int[capacity], new int[capacity], new int[capacity],
            new int[capacity], new int[capacity]);
        (_finish, _base) = (new long[capacity], new long[capacity]);
        _finishing = new PriorityQueue<int, long>(capacity);
        _longest = new PriorityQueue<(int, int), long>(capacity);
        _finished = new List<int>(capacity);
        _finishedBases = new List<long>(capacity);
        for (var k = 0; k < capacity; k++)
        {
            _free[k] = capacity - 1 - k;
        }

        _freeCount = capacity;
    }

    public int Count { get; private set; }

    /// <summary>The largest base among the sequences in flight (long.MinValue when none).</summary>
    public long MaxBase
    {
        get
        {
            while (_longest.TryPeek(out var top, out _))
            {
                if (_serial[top.Slot] == top.Serial)
                {
                    return _base[top.Slot];
                }

                _longest.Dequeue();
            }

            return long.MinValue;
        }
    }

    /// <summary>The earliest finish among the sequences in flight (long.MaxValue when none).</summary>
    public long NextFinish => _finishing.TryPeek(out _, out var finish) ? finish : long.MaxValue;

    /// <summary>KV blocks reserved by the sequences in flight (paged).</summary>
    public long Reserved { get; private set; }

    /// <summary>The base of the <paramref name="k"/>-th live sequence (0 &lt;= k &lt; Count, in no particular order).</summary>
    public long BaseAt(int k) => _base[_live[k]];

    public void Add(int id, long finish, long lengthBase, int blocks = 0)
    {
        var slot = _free[--_freeCount];
        (_ids[slot], _finish[slot], _base[slot], _blocks[slot], _serial[slot]) = (id, finish, lengthBase, blocks, ++_serials);
        _where[slot] = Count;
        _live[Count++] = slot;
        _finishing.Enqueue(slot, finish);
        _longest.Enqueue((slot, _serial[slot]), -lengthBase);
        Reserved += blocks;
    }

    /// <summary>The bases of the sequences <see cref="RemoveFinished"/> removed last, in its order.</summary>
    public List<long> FinishedBases => _finishedBases;

    /// <summary>Removes the sequences done after step <paramref name="steps"/>; returns their ids (a reused list).</summary>
    public List<int> RemoveFinished(long steps)
    {
        _finished.Clear();
        _finishedBases.Clear();
        while (_finishing.TryPeek(out var slot, out var finish) && finish == steps)
        {
            _finishing.Dequeue();
            _finished.Add(_ids[slot]);
            _finishedBases.Add(_base[slot]);
            Reserved -= _blocks[slot];
            _serial[slot] = 0; // its entry among the longest is stale now
            var moved = _live[--Count];
            _live[_where[slot]] = moved;
            _where[moved] = _where[slot];
            _free[_freeCount++] = slot;
        }

        return _finished;
    }
}
