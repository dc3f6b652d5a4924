using Lens.Core;
using Lens.Testing;

namespace Lens.Engine.Tests;

/// <summary>
/// The engine's scheduler and Lens.Core's <see cref="PolicyScheduler"/> (the step-by-step definition the simulation and the fit
/// use) agree exactly, for every policy, on a staged trace: the same steps in the same cells, and every request's first token and
/// finish at the same virtual times when the engine's steps are costed as the simulation costs them.
/// </summary>
public sealed class PolicySimulationAgreementTests
{
    [Theory]
    [InlineData("tiny-batch")]
    [InlineData("tiny-paged")]
    [InlineData("tiny-chunked")]
    public async Task Engine_steps_and_the_policy_scheduler_agree_exactly_on_a_staged_trace(string profile)
    {
        using var engine = ReferenceEngine.Create(EngineProfiles.Load(profile), warmup: false);
        var policy = engine.Policy;
        var chunked = policy.Scheduler == SchedulerKind.Chunked;
        var buckets = engine.ServingBuckets;
        var cells = new StepCells(buckets, policy);

        // Three stages: the first more than max_num_seqs (and, paged, more KV than the capacity), the others submitted while the
        // engine is held between two iterations with sequences in flight; prompts longer than the chunked budget, lengths that
        // cross buckets.
        var stages = StagedSubmission.Stages;
        var requests = stages.SelectMany(q => q).ToArray();
        var (results, steps, held) = await StagedSubmission.RunAsync(engine, stages);
        Assert.Equal(steps.Count, (int)(steps[^1].Index - steps[0].Index + 1));

        // Exactly representable costs, distinct per cell; a stage held before step i arrived during step i - 1.
        var costs = new Costs();
        var stageOf = stages.SelectMany((stage, k) => stage.Select(_ => k)).ToArray();
        var arrival = new double[requests.Length];
        var first = new double[requests.Length];
        var finish = new double[requests.Length];
        var now = 0.0;
        foreach (var step in steps)
        {
            for (var n = 0; n < requests.Length; n++)
            {
                arrival[n] = held[stageOf[n]] == step.Index ? Math.Max(0, now - 0.25) : arrival[n];
            }

            for (var n = 0; n < requests.Length && !chunked; n++)
            {
                if (results[n].Steps[0].Index == step.Index)
                {
                    now += costs.StepMs(cells.Prefill(buckets.PrefillIndex(requests[n].I))); // admitted before this step, alone
                    first[n] = now;
                }
            }

            now += costs.StepMs(cells.Step(step.Row, step.Column));
            for (var n = 0; n < requests.Length; n++)
            {
                // Chunked: a prompt completes in the step before its first decode (decodes are always scheduled).
                first[n] = chunked && results[n].Steps[0].Index == step.Index + 1 ? now : first[n];
                finish[n] = results[n].Steps[^1].Index == step.Index ? now : finish[n];
            }
        }

        var sink = new Sink();
        PolicyScheduler.For(buckets, policy).Run([.. requests.Select((q, n) => new TraceRequest(arrival[n], q.I, q.O))], costs, sink);
        var simulated = sink.Steps.Where(s => !cells.IsPrefill(s.Cell)).ToArray();
        Assert.Equal(simulated.Select(s => s.Cell), steps.Select(s => cells.Step(s.Row, s.Column)));
        Assert.Equal(simulated.Select(s => s.Tokens), steps.Select(s => s.Rows));
        Assert.Equal(first, requests.Select((_, n) => sink.Steps.Single(s => s.FirstToken.Contains(n)).FirstTokenAtMs));
        Assert.Equal(finish, requests.Select((_, n) => sink.Steps.Single(s => s.Finished.Contains(n)).EndMs));
        Assert.Equal(3, arrival.Distinct().Count());
        Assert.True(steps.Select(s => s.Column).Distinct().Count() >= 2, "the step's column changed");
    }

    /// <summary>Cell <c>c</c> costs <c>1 + c / 8</c> ms: distinct and exact in binary.</summary>
    private sealed class Costs : IStepCosts
    {
        public double StepMs(int cell) => 1 + (cell / 8.0);

        public double FirstTokenMs(int cell) => StepMs(cell);
    }

    private sealed class Sink : IStepSink
    {
        public List<Lens.Core.ScheduledStep> Steps { get; } = [];

        public void Step(Lens.Core.ScheduledStep step) => Steps.Add(step);
    }
}
