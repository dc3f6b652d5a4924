namespace Lens.Client;

/// <summary>An HTTP API call failed: the status and the problem details (RFC 7807) the server sent.</summary>
public sealed class LensApiException : Exception
{
    public LensApiException(int status, string? title, string? detail, IReadOnlyDictionary<string, string[]>? errors = null)
        : base($"{status} {title}: {detail}")
    {
        Status = status;
        Title = title;
        Detail = detail;
        Errors = errors ?? new Dictionary<string, string[]>();
    }

    public LensApiException()
        : this(0, null, null)
    {
    }

    public LensApiException(string message)
        : base(message)
    {
        Errors = new Dictionary<string, string[]>();
    }

    public LensApiException(string message, Exception innerException)
        : base(message, innerException)
    {
        Errors = new Dictionary<string, string[]>();
    }

    public int Status { get; }

    public string? Title { get; }

    public string? Detail { get; }

    /// <summary>Field name to reasons, for validation problems (400).</summary>
    public IReadOnlyDictionary<string, string[]> Errors { get; }
}
