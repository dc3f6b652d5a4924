using Lens.Core;

namespace Lens.Engine.Tests;

/// <summary>
/// Records each call a scheduler makes, as text; a prefill's token is 1000 + I, a decode or mixed row's is its position + 1.
/// A mixed step is written as its token and context bucket and, per sequence, <c>slot@first position+tokens</c>.
/// </summary>
internal sealed class RecordingExecutor(int[]? prefillEdges = null, int[]? decodeEdges = null) : IStepExecutor
{
    private readonly int[] _prefill = prefillEdges ?? [16, 32, 64, 128];
    private readonly int[] _edges = decodeEdges ?? [16, 32, 64, 128];
    private long _steps;

    public List<string> Calls { get; } = [];

    public List<string> Take()
    {
        var calls = Calls.ToList();
        Calls.Clear();
        return calls;
    }

    public PrefillOutcome Prefill(int slot, IReadOnlyList<int>? prompt, int inputLength, int prefillIndex)
    {
        Calls.Add($"prefill slot {slot} I {inputLength} pre {prefillIndex}");
        return new PrefillOutcome(1000 + inputLength, _prefill[prefillIndex], 0);
    }

    public BatchStepTrace Decode(Span<DecodeRow> rows, int batch, int lengthBucket, long started)
    {
        var described = new List<string>();
        for (var r = 0; r < rows.Length; r++)
        {
            described.Add($"{rows[r].Slot}@{rows[r].Position}");
            rows[r].Token = rows[r].Position + 1;
        }

        Calls.Add($"decode B {batch} D {lengthBucket} rows {string.Join(' ', described)}");
        return new BatchStepTrace(_steps++, batch, rows.Length, new BucketId(BucketKind.Decode, _edges[lengthBucket]),
            _edges[lengthBucket], 0, 0, 0);
    }

    public BatchStepTrace Mixed(Span<DecodeRow> rows, int tokenBucket, int contextBucket, long started)
    {
        var described = new List<string>();
        for (var r = 0; r < rows.Length; r++)
        {
            if (r > 0 && rows[r - 1].Slot == rows[r].Slot)
            {
                Assert.Equal(rows[r - 1].Position + 1, rows[r].Position); // a chunk's positions are consecutive
            }
            else
            {
                var count = 1;
                while (r + count < rows.Length && rows[r + count].Slot == rows[r].Slot)
                {
                    count++;
                }

                described.Add($"{rows[r].Slot}@{rows[r].Position}+{count}");
            }

            rows[r].Token = rows[r].Position + 1;
        }

        Calls.Add($"mixed T {tokenBucket} K {contextBucket} rows {string.Join(' ', described)}");
        return new BatchStepTrace(_steps++, tokenBucket, rows.Length, new BucketId(BucketKind.Decode, _edges[contextBucket]),
            _edges[contextBucket], 0, 0, 0, EngineStepKind.Mixed);
    }
}
