using System.Globalization;

namespace Lens.Core;

/// <summary>A field of a <see cref="Workload"/>; each front end names it its own way in errors (a CLI option, a JSON field).</summary>
public enum WorkloadField
{
    Trace,
    Rate,
    Burstiness,
    Count,
    InputDist,
    OutputDist,
    MaxOutput,
    SloTtft,
    SloTpot,
    Replicas,
    MaxNumSeqs,
}

/// <summary>What is wrong with a <see cref="Workload"/>: the field, and a message naming it as the front end does, with its allowed range.</summary>
public sealed record WorkloadError(WorkloadField Field, string Message);

/// <summary>The requests one bucket set serves, and how many of them were clamped into it (<see cref="Workload.Fit(BucketSet, IReadOnlyList{TraceRequest})"/>).</summary>
/// <param name="MaxInput">The longest prompt the buckets serve: <c>min(pm, dn - 1)</c>.</param>
/// <param name="MaxSequence">The longest sequence the buckets serve: <c>dn</c>.</param>
public sealed record FittedTrace(IReadOnlyList<TraceRequest> Requests, int Clamped, int MaxInput, int MaxSequence)
{
    /// <summary>A sentence saying how many requests were clamped and into what, or null when none was.</summary>
    public string? ClampNote => Clamped == 0
        ? null
        : string.Create(CultureInfo.InvariantCulture,
            $"{Clamped} of {Requests.Count} requests were clamped into the buckets (prompt <= {MaxInput}, I + O <= {MaxSequence})");
}

/// <summary>
/// One description of a workload, used by every front end (CLI, HTTP, console): the requests, either a given trace or generated as
/// arrivals x lengths (an <see cref="ArrivalProcess"/> composed with a <see cref="LengthDistribution"/> for prompts and one for
/// outputs, as Vidur composes an interval generator and a length generator), the SLO they are judged by, and how they are served
/// (replicas sharing one queue, at most <see cref="MaxNumSeqs"/> sequences in flight each). <see cref="Validate(Func{WorkloadField, string}, int, BucketSet)"/> checks it once,
/// naming each field as the caller does; <see cref="Generate(BucketSet)"/> gives the same trace for the same rate, lengths and seed everywhere.
/// </summary>
/// <remarks>
/// The one rule for requests longer than a deployment's buckets (<see cref="Fit(BucketSet, IReadOnlyList{TraceRequest})"/>): a generated request is clamped into the
/// buckets that serve it (prompt at most <c>min(pm, dn - 1)</c>, output at most <c>dn - I</c>) and counted, so that simulate and
/// advise serve the same requests and say how many were clamped. A given trace is the user's data: simulate refuses a row its
/// deployment cannot serve (naming the row), and advise compares the current deployment on the trace clamped into its buckets.
/// </remarks>
public sealed record Workload
{
    /// <summary>Replicas at most (a bound on the simulation's state, the same for the CLI, the service and the console).</summary>
    public const int MaxReplicas = 10_000;

    /// <summary>Generated requests at most; front ends may allow fewer (the service's per-call limits).</summary>
    public const int MaxCount = 10_000_000;

    /// <summary>The largest coefficient of variation of the gaps between arrivals.</summary>
    public const double MaxBurstiness = 100;

    /// <summary>A given trace (null: generated from <see cref="RequestsPerSecond"/>, the lengths, <see cref="Count"/> and <see cref="Seed"/>).</summary>
    public IReadOnlyList<TraceRequest>? Trace { get; init; }

    /// <summary>Arrival rate of a generated workload (requests per second).</summary>
    public double? RequestsPerSecond { get; init; }

    /// <summary>Coefficient of variation of the gaps between arrivals: 1 is Poisson, above 1 bursty (Gamma gaps).</summary>
    public double Burstiness { get; init; } = 1;

    /// <summary>Requests generated.</summary>
    public int Count { get; init; } = 1000;

    public int Seed { get; init; }

    /// <summary>Prompt lengths (<see cref="LengthDistribution.Parse"/>); null: uniform over what the buckets serve, <c>1..min(pm, dn - 1)</c>.</summary>
    public string? InputDist { get; init; }

    /// <summary>Output lengths; null: uniform over <c>1..</c><see cref="MaxOutput"/> (or <c>dn - 1</c>).</summary>
    public string? OutputDist { get; init; }

    /// <summary>A cap on generated output lengths (applied to the draws, before clamping into the buckets).</summary>
    public int? MaxOutput { get; init; }

    public double? SloTtftMs { get; init; }

    public double? SloTpotMs { get; init; }

    /// <summary>Replicas sharing one first-come first-served queue.</summary>
    public int Replicas { get; init; } = 1;

    /// <summary>Sequences in flight at most per replica; null: the deployment's largest batch bucket.</summary>
    public int? MaxNumSeqs { get; init; }

    /// <summary>The objectives (null without them; <see cref="Validate(Func{WorkloadField, string}, int, BucketSet)"/> checks that both or neither are given).</summary>
    public ServiceObjectives? Slo => SloTtftMs is { } ttft && SloTpotMs is { } tpot ? new ServiceObjectives(ttft, tpot) : null;

    /// <summary>
    /// The first thing wrong with the workload, or null. <paramref name="name"/> names each field as the caller's user knows it;
    /// <paramref name="maxRequests"/> bounds a trace's and a generated workload's size; with <paramref name="buckets"/>,
    /// <see cref="MaxNumSeqs"/> must be at most their largest batch bucket. A workload with neither a trace nor a rate is valid here:
    /// each front end says in its own words which of the two it needs.
    /// </summary>
    public WorkloadError? Validate(Func<WorkloadField, string> name, int maxRequests = MaxCount, BucketSet? buckets = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        maxRequests = Math.Clamp(maxRequests, 1, MaxCount);
        WorkloadError Error(WorkloadField field, string message) => new(field, string.Create(CultureInfo.InvariantCulture, $"{name(field)} {message}"));

        if (Trace is { } trace)
        {
            if (RequestsPerSecond is not null)
            {
                return new(WorkloadField.Trace, $"give either {name(WorkloadField.Trace)} or {name(WorkloadField.Rate)}, not both");
            }

            if (trace.Count == 0 || trace.Count > maxRequests)
            {
                return Error(WorkloadField.Trace, $"has {trace.Count} requests; give 1..{maxRequests}");
            }
        }

        if (RequestsPerSecond is { } rate)
        {
            if (!(rate > 0) || !double.IsFinite(rate))
            {
                return Error(WorkloadField.Rate, $"must be positive (requests per second); got {rate}");
            }

            if (Count < 1 || Count > maxRequests)
            {
                return Error(WorkloadField.Count, $"must be in 1..{maxRequests}; got {Count}");
            }
        }

        if (!(Burstiness > 0 && Burstiness <= MaxBurstiness))
        {
            return Error(WorkloadField.Burstiness, $"must be in (0, {MaxBurstiness}]; got {Burstiness}");
        }

        foreach (var (field, text) in new[] { (WorkloadField.InputDist, InputDist), (WorkloadField.OutputDist, OutputDist) })
        {
            try
            {
                _ = text is null ? null : LengthDistribution.Parse(text, name(field));
            }
            catch (ArgumentException ex)
            {
                return new(field, ex.Message);
            }
        }

        if (MaxOutput is < 1)
        {
            return Error(WorkloadField.MaxOutput, $"must be at least 1; got {MaxOutput}");
        }

        if ((SloTtftMs is null) != (SloTpotMs is null))
        {
            var missing = SloTtftMs is null ? WorkloadField.SloTtft : WorkloadField.SloTpot;
            return new(missing, $"give {name(WorkloadField.SloTtft)} and {name(WorkloadField.SloTpot)} together (both ms, positive) or neither");
        }

        foreach (var (field, value) in new[] { (WorkloadField.SloTtft, SloTtftMs), (WorkloadField.SloTpot, SloTpotMs) })
        {
            if (value is { } ms && (!(ms > 0) || !double.IsFinite(ms)))
            {
                return Error(field, $"must be a positive number of ms; got {ms}");
            }
        }

        if (Replicas is < 1 or > MaxReplicas)
        {
            return Error(WorkloadField.Replicas, $"must be in 1..{MaxReplicas}; got {Replicas}");
        }

        var maxSeqs = buckets?.MaxBatch ?? int.MaxValue;
        if (MaxNumSeqs is { } seqs && (seqs < 1 || seqs > maxSeqs))
        {
            return Error(WorkloadField.MaxNumSeqs, buckets is null
                ? $"must be at least 1; got {seqs}"
                : $"must be at most the largest batch bucket {maxSeqs} (allowed 1..{maxSeqs}); got {seqs}");
        }

        return null;
    }

    /// <summary>As <see cref="Validate(Func{WorkloadField, string}, int, BucketSet)"/> for a workload served on <paramref name="model"/>:
    /// <c>max_num_seqs</c> is bounded by the model's (<see cref="DeploymentModel.MaxNumSeqs"/>: the chunked policy's own, else the largest
    /// batch bucket).</summary>
    public WorkloadError? Validate(Func<WorkloadField, string> name, int maxRequests, DeploymentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Policy.Scheduler != SchedulerKind.Chunked)
        {
            return Validate(name, maxRequests, model.Buckets);
        }

        if (Validate(name, maxRequests) is { } error)
        {
            return error;
        }

        return MaxNumSeqs is { } seqs && seqs > model.MaxNumSeqs
            ? new(WorkloadField.MaxNumSeqs, string.Create(CultureInfo.InvariantCulture,
                $"{name(WorkloadField.MaxNumSeqs)} must be at most the chunked policy's max_num_seqs {model.MaxNumSeqs} (allowed 1..{model.MaxNumSeqs}); got {seqs}"))
            : null;
    }

    /// <summary>Throws an <see cref="ArgumentException"/> with <see cref="Validate(Func{WorkloadField, string}, int, BucketSet)"/>'s first error (fields named as in this type).</summary>
    public void EnsureValid(int maxRequests = MaxCount, BucketSet? buckets = null)
    {
        if (Validate(f => f.ToString(), maxRequests, buckets) is { } error)
        {
            throw new ArgumentException(error.Message);
        }
    }

    /// <summary>
    /// The requests to serve on <paramref name="buckets"/>: a given <see cref="Trace"/> as it is, or the generated ones
    /// (<see cref="Draw(BucketSet)"/>) clamped into the buckets (<see cref="Fit(BucketSet, IReadOnlyList{TraceRequest})"/>).
    /// </summary>
    public FittedTrace Generate(BucketSet buckets)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        return Generate(Bounds.Of(buckets));
    }

    /// <summary>As <see cref="Generate(BucketSet)"/>, within what <paramref name="model"/> serves under its scheduling policy.</summary>
    public FittedTrace Generate(DeploymentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Generate(Bounds.Of(model));
    }

    private FittedTrace Generate(Bounds bounds) =>
        Trace is { } given ? new FittedTrace(given, 0, bounds.MaxInput, bounds.MaxSequence) : Fit(bounds, Draw(bounds));

    /// <summary>
    /// <see cref="Count"/> generated requests, before any clamping, seeded and deterministic: for each request in turn a gap from the
    /// arrival process, then a prompt length, then an output length (capped by <see cref="MaxOutput"/>), all from one
    /// <see cref="Random"/>(<see cref="Seed"/>). <paramref name="defaults"/> give the default lengths only (uniform over what they serve).
    /// </summary>
    public IReadOnlyList<TraceRequest> Draw(BucketSet defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        return Draw(Bounds.Of(defaults));
    }

    /// <summary>As <see cref="Draw(BucketSet)"/>, with default lengths over what <paramref name="model"/> serves under its policy.</summary>
    public IReadOnlyList<TraceRequest> Draw(DeploymentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Draw(Bounds.Of(model));
    }

    private IReadOnlyList<TraceRequest> Draw(Bounds defaults)
    {
        EnsureValid();
        var rate = RequestsPerSecond ?? throw new InvalidOperationException("the workload has a given trace or no rate: nothing to draw");
        var maxInput = defaults.MaxInput;
        var arrivals = new ArrivalProcess(rate, Burstiness);
        var input = LengthDistribution.Parse(InputDist ?? $"uniform:1-{maxInput}", "the input distribution");
        var output = LengthDistribution.Parse(OutputDist ?? $"uniform:1-{MaxOutput ?? defaults.MaxSequence - 1}", "the output distribution");
        var cap = MaxOutput ?? int.MaxValue;
        var rng = new Random(Seed);
        var drawn = new TraceRequest[Count];
        var t = 0.0;
        for (var n = 0; n < drawn.Length; n++)
        {
            t += arrivals.NextGapMs(rng);
            var i = input.Draw(rng);
            drawn[n] = new TraceRequest(t, i, Math.Min(output.Draw(rng), cap));
        }

        return drawn;
    }

    /// <summary>
    /// <paramref name="trace"/> clamped into <paramref name="buckets"/>: each prompt to at most <c>min(pm, dn - 1)</c>, then each
    /// output to at most <c>dn - I</c>; <see cref="FittedTrace.Clamped"/> counts the requests that changed. The one rule for requests
    /// longer than a deployment's buckets wherever a workload is served on them (simulate's and advise's generated workloads, the
    /// current deployment in advice).
    /// </summary>
    public static FittedTrace Fit(BucketSet buckets, IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        return Fit(Bounds.Of(buckets), trace);
    }

    /// <summary>As <see cref="Fit(BucketSet, IReadOnlyList{TraceRequest})"/>, into what <paramref name="model"/> serves under its policy
    /// (a chunked prompt is bounded by <c>max_model_len - 1</c> only; <c>I + O</c> by the policy's bound).</summary>
    public static FittedTrace Fit(DeploymentModel model, IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Fit(Bounds.Of(model), trace);
    }

    private static FittedTrace Fit(Bounds bounds, IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(trace);
        var maxInput = bounds.MaxInput;
        var fitted = new TraceRequest[trace.Count];
        var clamped = 0;
        for (var n = 0; n < fitted.Length; n++)
        {
            var r = trace[n];
            var i = Math.Min(r.InputLength, maxInput);
            var o = (int)Math.Min(r.OutputLength, (long)bounds.MaxSequence - i);
            if (i != r.InputLength || o != r.OutputLength)
            {
                clamped++;
            }

            fitted[n] = r with { InputLength = i, OutputLength = o };
        }

        return new FittedTrace(fitted, clamped, maxInput, bounds.MaxSequence);
    }

    /// <summary>The first request of <paramref name="trace"/> that the buckets cannot serve, with the reason, or null when all fit.</summary>
    public static (int Index, string Reason)? FirstOutOfRange(BucketSet buckets, IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        return FirstOutOfRange(buckets.CheckRequest, trace);
    }

    /// <summary>The first request of <paramref name="trace"/> that <paramref name="model"/> cannot serve under its policy, or null.</summary>
    public static (int Index, string Reason)? FirstOutOfRange(DeploymentModel model, IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(model);
        return FirstOutOfRange(model.CheckRequest, trace);
    }

    private static (int Index, string Reason)? FirstOutOfRange(Func<int, int, string?> check, IReadOnlyList<TraceRequest> trace)
    {
        ArgumentNullException.ThrowIfNull(trace);
        for (var n = 0; n < trace.Count; n++)
        {
            if (check(trace[n].InputLength, trace[n].OutputLength) is { } reason)
            {
                return (n, reason);
            }
        }

        return null;
    }

    /// <summary>What <paramref name="buckets"/> serve: the longest prompt and the longest <c>I + O</c>.</summary>
    internal static (int MaxInput, int MaxSequence) Served(BucketSet buckets) => Bounds.Of(buckets).Tuple;

    /// <summary>What <paramref name="model"/> serves under its scheduling policy: the longest prompt and the longest <c>I + O</c>.</summary>
    internal static (int MaxInput, int MaxSequence) Served(DeploymentModel model) => Bounds.Of(model).Tuple;

    /// <summary><paramref name="trace"/> clamped by <see cref="Fit(BucketSet, IReadOnlyList{TraceRequest})"/>'s rule into prompts up to
    /// <paramref name="maxInput"/> and <c>I + O</c> up to <paramref name="maxSequence"/>.</summary>
    internal static FittedTrace Fit(int maxInput, int maxSequence, IReadOnlyList<TraceRequest> trace) => Fit(new Bounds(maxInput, maxSequence), trace);

    /// <summary>What a deployment serves: prompts up to <see cref="MaxInput"/>, <c>I + O</c> up to <see cref="MaxSequence"/>.</summary>
    private readonly record struct Bounds(int MaxInput, int MaxSequence)
    {
        public (int, int) Tuple => (MaxInput, MaxSequence);

        public static Bounds Of(BucketSet buckets) => new(Math.Min(buckets.MaxPrompt, buckets.MaxSequence - 1), buckets.MaxSequence);

        public static Bounds Of(DeploymentModel model)
        {
            if (model.Policy.IsDefault)
            {
                return Of(model.Buckets);
            }

            var sequence = model.Scheduler.MaxSequence;
            return new(model.Policy.Scheduler == SchedulerKind.Chunked ? sequence - 1 : Math.Min(model.Buckets.MaxPrompt, sequence - 1), sequence);
        }
    }
}
