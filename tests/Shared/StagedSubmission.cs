using Lens.Engine;

namespace Lens.Testing;

/// <summary>
/// A trace in stages against the reference engine (this file is linked into each test project that needs it): the first stage
/// released at once, each later one submitted while the engine is held between two iterations, after it has run about a dozen
/// more steps (or finished what it had) since the stage before. What the engine did, step by step, is then compared with the
/// serving simulation on the same arrivals.
/// </summary>
internal static class StagedSubmission
{
    /// <summary>
    /// The agreement tests' trace, as (prompt, output) lengths: a first stage of more requests than max_num_seqs, then two more
    /// submitted with sequences in flight; prompts longer than a small chunked budget, lengths that cross buckets and finish at
    /// different steps.
    /// </summary>
    public static readonly (int I, int O)[][] Stages =
    [
        [(5, 20), (30, 3), (12, 40), (60, 10), (2, 2), (40, 50)],
        [(16, 17), (63, 65), (1, 100)],
        [(33, 9), (7, 60), (20, 30)],
    ];

    /// <summary>Submits <paramref name="stages"/> and waits for every request.</summary>
    /// <returns>Each request's result (stages in order), the engine's steps since the first submission, and per stage the engine's
    /// step count when it was submitted (its requests were admitted at that iteration boundary).</returns>
    public static async Task<(GenerationResult[] Results, IReadOnlyList<BatchStepTrace> Steps, long[] Held)> RunAsync(
        ReferenceEngine engine, (int I, int O)[][] stages)
    {
        var since = engine.Counters.DecodeSteps;
        var running = new List<Task<GenerationResult>>();
        var held = new List<long>();
        foreach (var stage in stages)
        {
            if (held.Count > 0)
            {
                // Let the engine run some steps (or finish what it has), bounded; then hold it at an iteration boundary.
                var target = engine.Counters.DecodeSteps + 12;
                for (var wait = 0; wait < 30_000 && engine.Counters.DecodeSteps < target && running.Any(t => !t.IsCompleted); wait++)
                {
                    await Task.Delay(1);
                }
            }

            using (engine.Pause())
            {
                held.Add(engine.Counters.DecodeSteps);
                running.AddRange(stage.Select(q => engine.GenerateAsync(q.I, q.O)));
            }
        }

        var results = await Task.WhenAll(running);
        return (results, engine.StepsSince(since), [.. held]);
    }
}
