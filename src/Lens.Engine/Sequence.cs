using System.Diagnostics;

namespace Lens.Engine;

/// <summary>One request from submission to its last token: its tokens and trace are written by the scheduler only.</summary>
internal sealed class Sequence(IReadOnlyList<int>? prompt, int inputLength, int outputLength, bool streamed,
    CancellationToken cancellation)
{
    public readonly int[] Tokens = new int[outputLength];
    public readonly DecodeStepTrace[] Steps = new DecodeStepTrace[outputLength - 1];
    public readonly TaskCompletionSource<GenerationResult> Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Released once per published token and once at the end, when a caller streams from the loop.</summary>
    public readonly SemaphoreSlim? Signal = streamed ? new SemaphoreSlim(0) : null;

    public int Produced; // tokens that exist; written with a release fence after the token itself
    public int Slot = -1, CacheMoves;

    /// <summary>Prompt tokens whose KV is computed: <c>I</c> after a prefill, growing chunk by chunk under the chunked scheduler.</summary>
    public int Prefilled;

    /// <summary>Chunked scheduler: the tokens the policy gave this sequence in the next mixed step (0: none).</summary>
    public int Scheduled;
    public long Arrived, Admitted, FirstToken;
    public PrefillTrace PrefillTrace;
    public volatile bool Abandoned;

    public IReadOnlyList<int>? Prompt { get; } = prompt;

    public int InputLength { get; } = inputLength;

    public CancellationToken Cancellation { get; } = cancellation;

    public bool Done => Produced == Tokens.Length;

    public void Publish(int produced)
    {
        Volatile.Write(ref Produced, produced);
        Signal?.Release();
    }

    public GenerationResult Result(long finished) => new(Tokens, InputLength, PrefillTrace, Steps, CacheMoves,
        Stopwatch.GetElapsedTime(Admitted, FirstToken).TotalMilliseconds, Stopwatch.GetElapsedTime(Admitted, finished).TotalMilliseconds,
        Stopwatch.GetElapsedTime(Arrived, Admitted).TotalMilliseconds);

    public void Complete(long finished)
    {
        Completion.TrySetResult(Result(finished));
        Signal?.Release();
    }

    public void Fail(Exception failure)
    {
        if (failure is OperationCanceledException cancelled)
        {
            Completion.TrySetCanceled(cancelled.CancellationToken);
        }
        else
        {
            Completion.TrySetException(failure);
        }

        Signal?.Release();
    }
}
