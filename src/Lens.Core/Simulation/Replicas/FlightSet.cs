namespace Lens.Core;

/// <summary>
/// One replica's decoding sequences: at most max_num_seqs, so linear scans are cheap and allocate nothing. A sequence's length (or
/// context) at replica step <c>g</c> is <c>base + g</c>, so a step changes nothing here: only admissions and departures do.
/// </summary>
internal sealed class FlightSet(int capacity)
{
    private readonly int[] _ids = new int[capacity];
    private readonly long[] _finish = new long[capacity]; // replica step count after which the sequence is done
    private readonly long[] _base = new long[capacity];   // length at step g is base + g
    private readonly int[] _blocks = new int[capacity];   // KV blocks reserved (paged)
    private readonly List<int> _finished = new(capacity);

    public int Count { get; private set; }

    public long MaxBase { get; private set; } = long.MinValue;

    public long NextFinish { get; private set; } = long.MaxValue;

    /// <summary>KV blocks reserved by the sequences in flight (paged).</summary>
    public long Reserved { get; private set; }

    public long BaseAt(int k) => _base[k];

    public void Add(int id, long finish, long lengthBase, int blocks = 0)
    {
        _ids[Count] = id;
        _finish[Count] = finish;
        _base[Count] = lengthBase;
        _blocks[Count] = blocks;
        Count++;
        MaxBase = Math.Max(MaxBase, lengthBase);
        NextFinish = Math.Min(NextFinish, finish);
        Reserved += blocks;
    }

    /// <summary>Removes the sequences done after step <paramref name="steps"/>; returns their ids (a reused list).</summary>
    public List<int> RemoveFinished(long steps)
    {
        _finished.Clear();
        var kept = 0;
        (MaxBase, NextFinish) = (long.MinValue, long.MaxValue);
        for (var k = 0; k < Count; k++)
        {
            if (_finish[k] == steps)
            {
                _finished.Add(_ids[k]);
                Reserved -= _blocks[k];
                continue;
            }

            (_ids[kept], _finish[kept], _base[kept], _blocks[kept]) = (_ids[k], _finish[k], _base[k], _blocks[k]);
            MaxBase = Math.Max(MaxBase, _base[kept]);
            NextFinish = Math.Min(NextFinish, _finish[kept]);
            kept++;
        }

        Count = kept;
        return _finished;
    }
}
