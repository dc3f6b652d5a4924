namespace Lens.Core;

/// <summary>
/// The chunked scheduler on one replica (method.md, "Scheduling policies"): every step has the budget <c>max_num_batched_tokens</c>;
/// decoding sequences get one token each, then partly processed prompts and then admitted requests (while a slot is free) get chunks
/// <c>min(left, budget left)</c>; the step costs <c>C[T, K]</c> (token bucket of its tokens, context bucket of the longest context after
/// it). A step with prompt tokens runs alone (<see cref="ServeStep"/>); decode-only steps, whose cell changes only when a sequence
/// leaves or the longest context crosses a context bucket, run in runs (a decoding sequence's context at step <c>g</c> is
/// <c>base + g</c>).
/// </summary>
internal sealed class ChunkedReplica : ReplicaScheduler
{
    private readonly FlightSet _decoding;
    private readonly List<Prompt> _prompts = [];   // admitted, prompt not yet complete, in admission order
    private readonly List<Prompt> _completed = [];
    private readonly int[] _contextEdges;
    private readonly int[] _tokenBuckets;
    private readonly int _budget;
    private int _row, _column;
    private double _cost;

    public ChunkedReplica(ServingContext context, int index)
        : base(context, index)
    {
        _decoding = new FlightSet(context.MaxSeqs);
        _contextEdges = [.. context.Buckets.Decode];
        _tokenBuckets = [.. context.Model.Policy.TokenBuckets];
        _budget = context.Model.Policy.MaxNumBatchedTokens;
    }

    public override int Count => _decoding.Count + _prompts.Count;

    public override bool TakesHead(int head) => _prompts.Count > 0 || (head >= 0 && Count < Context.MaxSeqs);

    public override bool WouldAdmit(int head) => head >= 0 && Count < Context.MaxSeqs;

    public override void ServeStep(IRequestSource source)
    {
        var start = Now;
        var budget = _budget - _decoding.Count;
        var context = _decoding.Count > 0 ? _decoding.MaxBase + Steps : 0;
        foreach (var prompt in _prompts)
        {
            prompt.Chunk = Math.Min(Context.Trace[prompt.Id].InputLength - prompt.Done, budget);
            budget -= prompt.Chunk;
            if (prompt.Chunk > 0)
            {
                context = Math.Max(context, prompt.Done + prompt.Chunk);
            }
        }

        while (budget > 0 && Count < Context.MaxSeqs && source.Peek(Now) is var id and >= 0)
        {
            source.Take();
            Context.Observer?.Admitted(Index, id, start);
            var prompt = new Prompt(id, start) { Chunk = Math.Min(Context.Trace[id].InputLength, budget) };
            _prompts.Add(prompt);
            budget -= prompt.Chunk;
            context = Math.Max(context, prompt.Chunk);
        }

        var row = PolicyScheduler.FirstAtOrAbove(_tokenBuckets, _budget - budget);
        var column = Context.Buckets.DecodeIndex((int)context);
        var cost = Context.Cost(Context.Cells.Step(row, column));
        Ran(row, column, 1, cost);
        Depart();

        _completed.Clear();
        _prompts.RemoveAll(p =>
        {
            p.Done += p.Chunk;
            p.Chunk = 0;
            var done = p.Done == Context.Trace[p.Id].InputLength;
            if (done)
            {
                _completed.Add(p);
            }

            return done;
        });
        foreach (var p in _completed)
        {
            var request = Context.Trace[p.Id];
            Context.Observer?.FirstToken(Index, p.Id);
            Context.FirstToken(Index, p.Id, p.StartMs, Now, Now);
            if (request.OutputLength > 1)
            {
                // Decode step k (k = 1..O-1) is replica step Steps + k - 1, at context I + k = base + step.
                _decoding.Add(p.Id, Steps + request.OutputLength - 1, request.InputLength + 1 - Steps);
            }
        }
    }

    public override (double Cost, long Steps) PlanRun()
    {
        var context = _decoding.MaxBase + Steps;
        _column = Context.Buckets.DecodeIndex((int)context);
        _row = PolicyScheduler.FirstAtOrAbove(_tokenBuckets, _decoding.Count);
        _cost = Context.Cost(Context.Cells.Step(_row, _column));
        return (_cost, Math.Min(_decoding.NextFinish - Steps, _contextEdges[_column] - context + 1));
    }

    public override void CommitRun(long steps)
    {
        Ran(_row, _column, steps, _cost);
        Depart();
    }

    private void Depart()
    {
        if (Steps == _decoding.NextFinish)
        {
            foreach (var id in _decoding.RemoveFinished(Steps))
            {
                Context.Finished(Index, id, Now);
            }
        }
    }

    /// <summary>A prompt being processed: tokens done, and the chunk of the current step.</summary>
    private sealed class Prompt(int id, double startMs)
    {
        public int Id { get; } = id;

        public double StartMs { get; } = startMs;

        public int Done { get; set; }

        public int Chunk { get; set; }
    }
}
