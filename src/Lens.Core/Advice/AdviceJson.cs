namespace Lens.Core;

/// <summary>The advice document (<c>advice.json</c>, and the service's answer): the source model, its buckets and the advice.</summary>
public static class AdviceJson
{
    private static readonly System.Text.Json.JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static string Serialize(Advice advice, string source, BucketSet sourceBuckets)
    {
        ArgumentNullException.ThrowIfNull(advice);
        ArgumentNullException.ThrowIfNull(sourceBuckets);
        return System.Text.Json.JsonSerializer.Serialize(new { source, sourceBuckets = sourceBuckets.ToString(), advice }, Options);
    }

    /// <summary>The advice of a document <see cref="Serialize"/> wrote (the service's answer to a client).</summary>
    /// <exception cref="FormatException">The text is not an advice document.</exception>
    public static Advice Deserialize(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize<AdviceDocument>(json, Options)?.Advice
                   ?? throw new FormatException("not an advice document: it has no 'advice'");
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new FormatException($"not an advice document: {ex.Message}", ex);
        }
    }

    private sealed record AdviceDocument(Advice? Advice);
}
