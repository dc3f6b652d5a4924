using Lens.Abstractions;
using Lens.Core;

namespace Lens.Grains;

/// <summary>
/// A deployment's wire spec (Lens.Abstractions: <see cref="DeploymentSpec"/>, <see cref="BucketContext"/>,
/// <see cref="BackendSpec"/>) as Core's bucket set, statistic and profiling plan, and the spec's validation, which builds them to
/// check. Kept out of the wire types so that the client SDK carries no Core; the HTTP API, the grains and the console all validate
/// here, so they refuse the same specs with the same errors.
/// </summary>
public static class DeploymentSpecMapping
{
    extension(Conventions)
    {
        public static DecodeConvention Parse(string? text) => text switch
        {
            Conventions.AfterAppend or null or "" => DecodeConvention.AfterAppend,
            Conventions.BeforeAppend => DecodeConvention.BeforeAppend,
            _ => throw new FormatException($"decode convention '{text}' is not one of {Conventions.AfterAppend}, {Conventions.BeforeAppend}"),
        };
    }

    extension(BucketContext context)
    {
        /// <summary>The bucket set under the context's policy: paged execution's decode buckets are block buckets
        /// (<see cref="BucketSet.Paged"/>); a chunked context's batch buckets are its token buckets.</summary>
        public BucketSet ToBucketSet() => context.Policy is { IsDefault: false, IsPaged: true }
            ? BucketSet.Paged(context.PrefillBuckets, context.DecodeBuckets, Conventions.Parse(context.Convention), context.BatchBuckets)
            : new(context.PrefillBuckets, context.DecodeBuckets, Conventions.Parse(context.Convention), context.BatchBuckets);

        public RepeatStatistic ToStatistic() => RepeatStatistic.Parse(context.Statistic);
    }

    extension(DeploymentSpec spec)
    {
        public BucketSet ToBucketSet() => spec.Context.ToBucketSet();

        public PlanOptions ToPlanOptions() => new(spec.Repeats, spec.MaxSpan, spec.Seed);

        public ProfilingPlan CreatePlan() => ProfilingPlanner.Create(spec.ToBucketSet(), spec.ToPlanOptions());

        /// <summary>
        /// The rows to profile, in order: <see cref="CreatePlan"/>'s for prefill-first padded, else <see cref="PolicyPlanner"/>'s, each
        /// row's bucket the cell its measurements are stored under (<see cref="Placement.Cell"/>: a chunked group of <c>n</c> is kept
        /// in the row of its token bucket). Deterministic: the same spec always gives the same rows.
        /// </summary>
        public IReadOnlyList<PlanRow> PlanRows()
        {
            var policy = spec.ToPolicy();
            if (policy.IsDefault)
            {
                return spec.CreatePlan().Rows;
            }

            var buckets = spec.ToBucketSet();
            return [.. PolicyPlanner.Create(buckets, policy, spec.ToPlanOptions()).Rows.Select(r => r with { Bucket = Placement.Cell(buckets, r.Bucket) })];
        }

        /// <summary>Every rule the spec breaks, by field; empty when valid (the bucket sets and the profiling plan are built to check).</summary>
        public IReadOnlyDictionary<string, string[]> Validate()
        {
            var errors = new Dictionary<string, List<string>>();
            if (LensNames.Check(spec.Name, "name") is { } nameError)
            {
                Add(errors, "name", nameError);
            }
            else if (spec.Name.Length > DeploymentSpec.MaxNameLength)
            {
                Add(errors, "name", $"name is {spec.Name.Length} characters long; at most {DeploymentSpec.MaxNameLength} are allowed");
            }

            if (string.IsNullOrWhiteSpace(spec.Model) || spec.Model.Length > 256)
            {
                Add(errors, "model", "model is empty or longer than 256 characters");
            }

            if (spec.BatchSize is < 1 or > 4096)
            {
                Add(errors, "batchSize", $"batch size must be in 1..4096; got {spec.BatchSize}");
            }

            if (spec.TensorParallel is < 1 or > 1024)
            {
                Add(errors, "tensorParallel", $"tensor-parallel degree must be in 1..1024; got {spec.TensorParallel}");
            }

            if ((spec.SdkVersion?.Length ?? 0) > 128 || (spec.Dtype?.Length ?? 0) > 32)
            {
                Add(errors, "sdkVersion", "sdk version (128) or dtype (32) is too long");
            }

            if (spec.BatchBuckets is { } batch &&
                (batch.Length is 0 or > DeploymentSpec.MaxBatchBuckets || batch.Any(b => b is < 1 or > DeploymentSpec.MaxBatch)))
            {
                Add(errors, "batchBuckets",
                    $"batch buckets need 1..{DeploymentSpec.MaxBatchBuckets} sizes, each in 1..{DeploymentSpec.MaxBatch}, ascending");
            }
            else if (spec.IsBatched && spec.BatchSize != 1 && spec.BatchSize != spec.BatchBuckets![^1])
            {
                Add(errors, "batchSize", $"batch size {spec.BatchSize} must be the largest batch bucket {spec.BatchBuckets![^1]} (or left at 1)");
            }
            else if (spec.PrefillBuckets is null || spec.DecodeBuckets is null || spec.PrefillBuckets.Length > 256 ||
                     spec.DecodeBuckets.Length > 256)
            {
                Add(errors, "buckets", "prefill and decode buckets are required, at most 256 each");
            }
            else if (PolicyMapping.Validate(spec, (field, reason) => Add(errors, field, reason)) is { } policy)
            {
                try
                {
                    var buckets = spec.ToBucketSet();
                    if (PolicyScheduler.Problem(buckets, policy) is { } problem)
                    {
                        Add(errors, PolicyMapping.FieldOf(problem), problem);
                    }
                    else
                    {
                        try
                        {
                            _ = spec.PlanRows();
                        }
                        catch (PlanException ex)
                        {
                            Add(errors, "plan", ex.Message);
                        }
                    }
                }
                catch (Exception ex) when (ex is BucketSetException or FormatException)
                {
                    Add(errors, ex is FormatException ? "convention" : "buckets", ex.Message);
                }
            }

            if (spec.ReprofileEveryMinutes is < 1 or > 525_600)
            {
                Add(errors, "reprofileEveryMinutes",
                    $"re-profiling period must be 1..525600 minutes (a year); got {spec.ReprofileEveryMinutes}");
            }

            try
            {
                _ = RepeatStatistic.Parse(spec.Statistic ?? "");
            }
            catch (FormatException ex)
            {
                Add(errors, "statistic", ex.Message);
            }

            if (spec.Backend is null)
            {
                Add(errors, "backend", "backend is required");
            }
            else
            {
                Validate(spec.Backend, errors);
            }

            return errors.ToDictionary(e => e.Key, e => e.Value.ToArray());
        }
    }

    private static void Validate(BackendSpec backend, Dictionary<string, List<string>> errors)
    {
        if (!BackendSpec.Kinds.Contains(backend.Kind))
        {
            Add(errors, "backend.kind", $"backend kind '{backend.Kind}' is not one of {string.Join(", ", BackendSpec.Kinds)}");
            return;
        }

        switch (backend.Kind)
        {
            case BackendSpec.OpenAi when LensNames.Check(backend.Name, "backend name") is { } backendError:
                Add(errors, "backend.name", $"an openai backend names one of the backends the operator configured for your tenant: {backendError}");
                break;
            case BackendSpec.Reference when LensNames.Check(backend.EngineProfile, "engine profile") is { } profileError:
                Add(errors, "backend.engineProfile", $"a reference backend needs an engine profile name (e.g. tiny): {profileError}");
                break;
            case BackendSpec.Replay when string.IsNullOrWhiteSpace(backend.ModelJson):
                Add(errors, "backend.modelJson", "a replay backend needs a fitted model's JSON (lens fit --out model.json)");
                break;
            case BackendSpec.Replay when backend.ModelJson.Length > BackendSpec.MaxModelJsonLength:
                Add(errors, "backend.modelJson",
                    $"the replayed model's JSON is {backend.ModelJson.Length} characters; at most {BackendSpec.MaxModelJsonLength} are stored");
                break;
            case BackendSpec.Replay:
                try
                {
                    _ = ModelJson.Deserialize(backend.ModelJson, "backend.modelJson");
                }
                catch (FormatException ex)
                {
                    Add(errors, "backend.modelJson", ex.Message);
                }

                break;
        }

        // Where the server connects and which secret it sends are the operator's to say (architecture.md, "Tenancy").
        if (!string.IsNullOrEmpty(backend.Endpoint))
        {
            Add(errors, "backend.endpoint",
                "a deployment may not name an endpoint; name a backend the operator configured for your tenant in backend.name");
        }

        if (!string.IsNullOrEmpty(backend.ApiKeyEnvironmentVariable))
        {
            Add(errors, "backend.apiKeyEnvironmentVariable",
                "a deployment may not name a key; the key of each backend is configured by the operator under your tenant");
        }

        if (!(backend.Noise >= 0 && backend.Noise <= 1))
        {
            Add(errors, "backend.noise", $"noise must be in 0..1; got {backend.Noise}");
        }
    }

    private static void Add(Dictionary<string, List<string>> errors, string field, string reason)
    {
        if (!errors.TryGetValue(field, out var list))
        {
            errors[field] = list = [];
        }

        list.Add(reason);
    }
}
