namespace Lens.Core;

/// <summary>Prompt tokens a step gave one request: <paramref name="Tokens"/> of them (the whole prompt under prefill-first).</summary>
/// <param name="Request">The request's index in the list given to the scheduler.</param>
public readonly record struct PromptChunk(int Request, int Tokens);

/// <summary>
/// One step a scheduler ran on a replica: its cost cell (<see cref="StepCells"/>), when it ran, and whom it served. Request numbers
/// are indices into the list given to <see cref="PolicyScheduler.Run"/>.
/// </summary>
/// <param name="Cell">The step's cost cell.</param>
/// <param name="StartMs">When it began.</param>
/// <param name="EndMs">When it ended (tokens of decodes and completed prompts are emitted then).</param>
/// <param name="FirstTokenAtMs">When the first tokens of <see cref="FirstToken"/> were emitted: a prefill-first prefill emits at its
/// measured TTFT (at most its cost); every other step at its end.</param>
/// <param name="Tokens">Tokens the step processed: the prompt under prefill-first, decodes plus chunks under chunked, one per row in a
/// decode step.</param>
/// <param name="Length">What chose the step's column: the longest sequence (padded), the batch's KV blocks (paged), the longest
/// context after the step (chunked), the prompt length (a prefill).</param>
/// <param name="Prompt">Requests that got prompt tokens.</param>
/// <param name="FirstToken">Requests whose first token the step emitted (their prompt completed).</param>
/// <param name="Decode">Requests that got one decode token.</param>
/// <param name="Finished">Requests that emitted their last token and left.</param>
public sealed record ScheduledStep(int Cell, double StartMs, double EndMs, double FirstTokenAtMs, int Tokens, int Length,
    IReadOnlyList<PromptChunk> Prompt, IReadOnlyList<int> FirstToken, IReadOnlyList<int> Decode, IReadOnlyList<int> Finished);

/// <summary>Receives every step a <see cref="PolicyScheduler"/> runs, in order.</summary>
public interface IStepSink
{
    void Step(ScheduledStep step);
}

/// <summary>
/// What a step costs (the execution-time predictor of Vidur's replica scheduler): the fitted cells of a model, a digital twin's sleep,
/// or unit costs for symbolic runs. Cells are <see cref="StepCells"/> indices.
/// </summary>
public interface IStepCosts
{
    /// <summary>The step's duration (ms).</summary>
    double StepMs(int cell);

    /// <summary>From the step's start to the first token it emits (ms): a prefill's measured TTFT; the step's duration otherwise.</summary>
    double FirstTokenMs(int cell);
}

/// <summary>Step costs of the common kinds.</summary>
public static class StepCosts
{
    /// <summary>Every step costs 1: the symbolic costs of a run whose arrivals are all at 0 (the fit's counts do not depend on them).</summary>
    public static IStepCosts Unit { get; } = new Constant(1);

    /// <summary>The fitted cells of <paramref name="model"/> under its policy: <c>A[p]</c> (TTFT: the measured one, at most A) and the
    /// step table. Throws <see cref="UnfittedBucketException"/> when a step needs a cell without a fit.</summary>
    public static IStepCosts Of(DeploymentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new ModelCosts(model, new StepCells(model.Buckets, model.Policy));
    }

    private sealed class Constant(double ms) : IStepCosts
    {
        public double StepMs(int cell) => ms;

        public double FirstTokenMs(int cell) => ms;
    }

    private sealed class ModelCosts(DeploymentModel model, StepCells cells) : IStepCosts
    {
        public double StepMs(int cell)
        {
            double ms;
            if (cells.IsPrefill(cell))
            {
                ms = model.PrefillMs(cell);
            }
            else
            {
                var (row, column) = cells.RowColumn(cell);
                ms = model.StepMs(row, column);
            }

            return double.IsNaN(ms) ? throw new UnfittedBucketException(cells.Bucket(cell)) : ms;
        }

        public double FirstTokenMs(int cell) => cells.IsPrefill(cell) ? model.TtftMs(cell) : StepMs(cell);
    }
}
