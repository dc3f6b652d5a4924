namespace Lens.Abstractions;

/// <summary>What went wrong, as the HTTP API maps it: 400, 404, 409 or 400/409 for prediction errors.</summary>
[GenerateSerializer, Alias("lens.LensErrorKind")]
public enum LensErrorKind
{
    /// <summary>A request that breaks a rule (bad name, bad spec, bad measurement). HTTP 400.</summary>
    Validation,

    /// <summary>No such deployment or bucket for this tenant. HTTP 404.</summary>
    NotFound,

    /// <summary>The name is taken by a different spec, or the state does not allow the call. HTTP 409.</summary>
    Conflict,

    /// <summary>A request length outside the deployment's buckets (Core's <c>RequestOutOfRangeException</c>). HTTP 400.</summary>
    OutOfRange,

    /// <summary>A prediction needs a bucket that has no fit yet (Core's <c>UnfittedBucketException</c>). HTTP 409.</summary>
    Unfitted,

    /// <summary>The tenant's (or the server's) budget of heavy calls is spent: retry when one has finished. HTTP 429.</summary>
    TooManyRequests,
}

/// <summary>
/// The one exception the grains throw on purpose. It crosses grain calls (Orleans serializes it) and carries what an HTTP problem
/// body needs: a kind, a message, and for validation errors the field-by-field reasons.
/// </summary>
[GenerateSerializer, Alias("lens.LensException")]
public sealed class LensException : Exception
{
    public LensException(LensErrorKind kind, string message, IReadOnlyDictionary<string, string[]>? errors = null)
        : base(message)
    {
        Kind = kind;
        Errors = errors is null ? null : new Dictionary<string, string[]>(errors);
    }

    public LensException()
    {
    }

    public LensException(string message)
        : base(message)
    {
    }

    public LensException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    [Id(0)]
    public LensErrorKind Kind { get; private set; }

    /// <summary>Field name to reasons, for <see cref="LensErrorKind.Validation"/>.</summary>
    [Id(1)]
    public Dictionary<string, string[]>? Errors { get; private set; }

    public static LensException Validation(string field, string reason) =>
        new(LensErrorKind.Validation, reason, new Dictionary<string, string[]> { [field] = [reason] });

    public static LensException Validation(IReadOnlyDictionary<string, string[]> errors) =>
        new(LensErrorKind.Validation, string.Join("; ", errors.SelectMany(e => e.Value.Select(v => $"{e.Key}: {v}"))), errors);

    public static LensException NotFound(string message) => new(LensErrorKind.NotFound, message);

    public static LensException Conflict(string message) => new(LensErrorKind.Conflict, message);
}
