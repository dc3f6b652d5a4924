using Lens.Core;

namespace Lens.Engine;

/// <summary>
/// The digital twin of a profiled deployment (issue 18): <see cref="Replicas"/> replicas of the deployment behind one shared queue,
/// each scheduled by the reference engine's <see cref="Scheduler"/> under the model's policy, with a <see cref="SleepingExecutor"/>
/// that sleeps each step's fitted cost (prefill <c>A[p]</c>, decode <c>S[B, D]</c>) on absolute deadlines instead of computing it.
/// Tokens are synthetic and streamed as they are produced. Served over HTTP by <see cref="EngineServer"/>, it lets routers,
/// autoscalers and clients be tested against an NPU deployment without the hardware, and gives LENS a steady device for its own
/// end-to-end checks (its noise is timer slop, not compute). Its timings are the serving simulation's
/// (<see cref="ServingSimulation"/> with shared routing) up to that slop.
/// </summary>
public sealed class DigitalTwin : IDisposable, ICompletionModel
{
    /// <summary>Most replicas one twin runs (each has a loop thread).</summary>
    public const int MaxReplicas = 64;

    /// <summary>Largest <see cref="Slowdown"/>.</summary>
    public const double MaxSlowdown = 1000;

    private readonly Scheduler[] _replicas;
    private readonly EngineWork[] _work;
    private readonly StepLog[] _logs;

    private DigitalTwin(DeploymentModel model, int replicas, string name, double slowdown)
    {
        Model = model;
        Name = name;
        Slowdown = slowdown;
        var queue = new RequestQueue();
        var policy = PolicyFor(model);
        _work = [.. Enumerable.Range(0, replicas).Select(_ => new EngineWork())];
        _logs = [.. Enumerable.Range(0, replicas).Select(_ => new StepLog())];
        _replicas = [.. Enumerable.Range(0, replicas).Select(r =>
            new Scheduler(new SleepingExecutor(model, _work[r], slowdown), policy, model.MaxNumSeqs, _work[r], _logs[r], $"{name} twin {r}", queue))];
    }

    /// <summary>The one model id the server lists and accepts.</summary>
    public string Name { get; }

    /// <summary>The deployment model whose fitted costs the twin sleeps.</summary>
    public DeploymentModel Model { get; }

    public BucketSet Buckets => Model.Buckets;

    /// <summary>The most sequences in flight at once on one replica: the largest batch bucket.</summary>
    public int MaxNumSeqs => Model.MaxNumSeqs;

    /// <summary>The bound on <c>I + O</c> under the model's policy (padded: the largest decode bucket; paged: max_model_len or the KV
    /// capacity).</summary>
    public int MaxModelLen => EnginePolicy.MaxModelLen(Model.Policy, Model.Buckets);

    /// <summary>The longest prompt under the model's policy (<see cref="EnginePolicy.MaxPrompt"/>).</summary>
    public int MaxPrompt => EnginePolicy.MaxPrompt(Model.Policy, Model.Buckets);

    public string? CheckRequest(int inputLength, int outputLength) => Model.CheckRequest(inputLength, outputLength);

    public int Replicas => _replicas.Length;

    /// <summary>Every step sleeps this many times its fitted cost (1: the deployment's own speed).</summary>
    public double Slowdown { get; }

    /// <summary>Token ids are within <c>0 .. Vocab - 1</c> (synthetic).</summary>
    public int Vocab => SleepingExecutor.Vocab;

    /// <summary>Requests waiting in the shared queue.</summary>
    public int WaitingRequests => _replicas[0].WaitingRequests;

    /// <summary>Exact counts of the work of every replica together.</summary>
    public EngineCounters Counters => _work.Select(w => w.Snapshot()).Aggregate(default(EngineCounters), (a, b) => new EngineCounters(
        a.Requests + b.Requests, a.PrefillPasses + b.PrefillPasses, a.PrefillRows + b.PrefillRows, a.DecodeSteps + b.DecodeSteps,
        a.AttentionPositions + b.AttentionPositions, 0, 0, 0, a.PaddedRows + b.PaddedRows));

    /// <summary>
    /// Starts a twin of <paramref name="model"/> with <paramref name="replicas"/> replicas (1..<see cref="MaxReplicas"/>) behind one
    /// queue. Throws <see cref="ArgumentException"/> naming the problem when the model has unfitted buckets, a cost that is not a
    /// finite non-negative number of milliseconds, or a policy the reference engine's scheduler does not run yet.
    /// </summary>
    /// <param name="slowdown">Each step sleeps this many times its cost (1..<see cref="MaxSlowdown"/>): the same queueing system in
    /// slower time, for a deployment whose steps are shorter than the timer's millisecond (replay its traces as many times slower).</param>
    public static DigitalTwin Create(DeploymentModel model, int replicas = 1, string name = "twin", double slowdown = 1)
    {
        if (slowdown is not (>= 1 and <= MaxSlowdown))
        {
            throw new ArgumentOutOfRangeException(nameof(slowdown), slowdown, $"slowdown {slowdown} is outside 1..{MaxSlowdown}");
        }

        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (replicas is < 1 or > MaxReplicas)
        {
            throw new ArgumentOutOfRangeException(nameof(replicas), replicas, $"replicas {replicas} is outside 1..{MaxReplicas}");
        }

        if (Check(model) is { } problem)
        {
            throw new ArgumentException(problem, nameof(model));
        }

        var twin = new DigitalTwin(model, replicas, name, slowdown);
        foreach (var replica in twin._replicas)
        {
            replica.Start();
        }

        return twin;
    }

    /// <summary>The first reason <paramref name="model"/> cannot be twinned, or null.</summary>
    public static string? Check(DeploymentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!model.IsComplete)
        {
            return $"bucket {model.Unfitted.First()} has no fitted cost; a twin sleeps every bucket's cost, so profile and fit it first";
        }

        var buckets = model.Buckets;
        for (var p = 0; p < buckets.Prefill.Length && model.Cells.UsesPrefill; p++)
        {
            if (!IsCost(model.PrefillMs(p)) || !IsCost(model.TtftMs(p)))
            {
                return $"prefill bucket {buckets.Prefill[p]}: A = {model.PrefillMs(p)} ms, TTFT = {model.TtftMs(p)} ms; costs must be finite and within 0..{MaxCostMs} ms";
            }
        }

        for (var b = 0; b < buckets.Batch.Length; b++)
        {
            for (var d = 0; d < buckets.Decode.Length; d++)
            {
                if (!IsCost(model.StepMs(b, d)))
                {
                    return $"step cell {model.CellName(model.Cells.Step(b, d))}: {model.StepMs(b, d)} ms; costs must be finite and within 0..{MaxCostMs} ms";
                }
            }
        }

        return null;
    }

    /// <summary>Generates exactly <paramref name="outputTokens"/> synthetic tokens after a prompt of <paramref name="promptLength"/>
    /// tokens, each handed to <paramref name="onToken"/> when its step ends.</summary>
    public Task<GenerationResult> GenerateAsync(int promptLength, int outputTokens, Func<int, ValueTask>? onToken = null,
        CancellationToken cancellationToken = default)
    {
        Model.EnsureRequest(promptLength, outputTokens);
        return _replicas[0].SubmitAsync(null, promptLength, outputTokens, onToken, cancellationToken);
    }

    /// <summary>As <see cref="GenerateAsync(int, int, Func{int, ValueTask}?, CancellationToken)"/> for a prompt of token ids (only
    /// its length matters).</summary>
    public Task<GenerationResult> GenerateAsync(IReadOnlyList<int> promptTokenIds, int outputTokens, Func<int, ValueTask>? onToken = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptTokenIds);
        return GenerateAsync(promptTokenIds.Count, outputTokens, onToken, cancellationToken);
    }

    /// <summary>Replica <paramref name="replica"/>'s decode steps from its step <paramref name="index"/> on (the newest 8,192 kept).</summary>
    public IReadOnlyList<BatchStepTrace> StepsSince(int replica, long index) => _logs[replica].Since(index);

    public void Dispose()
    {
        foreach (var replica in _replicas)
        {
            replica.Dispose();
        }
    }

    /// <summary>Longest step cost a twin sleeps: an hour.</summary>
    private const double MaxCostMs = 3_600_000;

    private static bool IsCost(double ms) => ms is >= 0 and <= MaxCostMs;

    /// <summary>The reference engine's policy for the model's: one place for the engine's policies to be added to.</summary>
    private static ISchedulingPolicy PolicyFor(DeploymentModel model)
    {
        return model.Policy.Scheduler == SchedulerKind.Chunked ? new ChunkedPolicy(model.Buckets, model.Policy)
            : model.Policy.Execution == ExecutionKind.Paged
            ? new PagedPolicy(model.Buckets, model.Buckets.Batch, model.Policy.BlockSize)
            : new PrefillFirstPolicy(model.Buckets, model.Buckets.Batch);
    }
}
