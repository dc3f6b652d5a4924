using Lens.Measurement;
using Spectre.Console;

namespace Lens.Cli.Commands;

/// <summary>What <c>profile</c> and <c>replay</c> share about an OpenAI-compatible endpoint: checking it and building its client.</summary>
internal static class EndpointOptions
{
    /// <summary>An error naming <c>--endpoint</c> unless it is an absolute http(s) URL; null when fine.</summary>
    public static ValidationResult? Check(string endpoint) =>
        Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && (uri.Scheme == "http" || uri.Scheme == "https")
            ? null
            : ValidationResult.Error($"--endpoint '{endpoint}' is not an http(s) URL such as http://127.0.0.1:8000/v1");

    public static OpenAiCompletionsBackend CreateBackend(string endpoint, string? model, string? apiKeyEnv, int tokenIdMax, int timeoutSeconds,
        int retries, bool textPrompt = false) =>
        new(new OpenAiCompletionsOptions
        {
            BaseAddress = new Uri(endpoint.EndsWith('/') ? endpoint : endpoint + "/"),
            Model = model,
            ApiKeyEnvironmentVariable = apiKeyEnv,
            Prompt = textPrompt ? PromptKind.Text : PromptKind.TokenIds,
            PromptTokenIdMax = tokenIdMax,
            PromptTokenIdMin = Math.Min(100, tokenIdMax - 1),
            AttemptTimeout = TimeSpan.FromSeconds(timeoutSeconds),
            MaxRetries = retries,
        });
}
