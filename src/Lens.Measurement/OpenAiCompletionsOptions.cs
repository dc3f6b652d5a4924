using System.Globalization;
using System.Text;

namespace Lens.Measurement;

/// <summary>How <see cref="OpenAiCompletionsBackend"/> builds a prompt of exactly <c>I</c> tokens.</summary>
public enum PromptKind
{
    /// <summary>
    /// A list of <c>I</c> token ids (vLLM and most OpenAI-compatible NPU servers accept it): the count is exact by construction.
    /// The ids are drawn at random from <see cref="OpenAiCompletionsOptions.PromptTokenIdMin"/> ..
    /// <see cref="OpenAiCompletionsOptions.PromptTokenIdMax"/> for every request, so repeats never hit a prefix cache.
    /// </summary>
    TokenIds,

    /// <summary>
    /// A text prompt, for servers that refuse token ids: <see cref="OpenAiCompletionsOptions.TextPrompt"/> builds it, and the count the
    /// server reports in <c>usage.prompt_tokens</c> must equal <c>I</c>, or the measurement fails.
    /// </summary>
    Text,
}

/// <summary>A transient fault about to be retried: which attempt failed (1-based), why, and the wait before the next one.</summary>
public sealed record MeasurementRetry(int FailedAttempt, string Reason, TimeSpan Delay);

/// <summary>
/// Settings of <see cref="OpenAiCompletionsBackend"/>: where the server is, which model, how to authenticate, and how hard to try.
/// </summary>
public sealed record OpenAiCompletionsOptions
{
    /// <summary>The API root ending in <c>/v1/</c>, e.g. <c>http://127.0.0.1:8000/v1/</c>; <c>completions</c> is resolved against it.</summary>
    public required Uri BaseAddress { get; init; }

    /// <summary>The served model's id; null asks <c>GET {base}/models</c> once and uses the only model served.</summary>
    public string? Model { get; init; }

    /// <summary>A bearer key sent as <c>Authorization: Bearer</c>. Never logged, printed, nor put in an exception message.</summary>
    public string? ApiKey { get; init; }

    /// <summary>The name of an environment variable holding the bearer key, read when <see cref="ApiKey"/> is null; it must be set.</summary>
    public string? ApiKeyEnvironmentVariable { get; init; }

    /// <summary>
    /// Refuse loopback, link-local and unspecified addresses, literal or resolved (<see cref="EndpointPolicy"/>): what a server sets
    /// when it calls endpoints on a tenant's behalf. Off for the CLI, whose user may profile a server on their own machine.
    /// </summary>
    public bool RefuseLocalAddresses { get; init; }

    public PromptKind Prompt { get; init; } = PromptKind.TokenIds;

    /// <summary>Smallest token id of a <see cref="PromptKind.TokenIds"/> prompt (inclusive).</summary>
    public int PromptTokenIdMin { get; init; } = 100;

    /// <summary>Largest token id of a <see cref="PromptKind.TokenIds"/> prompt (exclusive); keep it within the model's vocabulary.</summary>
    public int PromptTokenIdMax { get; init; } = 1000;

    /// <summary>Builds the text of an <c>I</c>-token prompt for <see cref="PromptKind.Text"/>; null repeats " hi" <c>I</c> times.</summary>
    public Func<int, string>? TextPrompt { get; init; }

    /// <summary>
    /// Send vLLM's <c>min_tokens</c> and <c>ignore_eos</c> (default), which force exactly <c>O</c> output tokens. Turn off only for a
    /// server that refuses unknown fields; the output count is still checked against <c>usage.completion_tokens</c>.
    /// </summary>
    public bool SendExactLengthHints { get; init; } = true;

    /// <summary>Limit of one attempt, from sending the request to the end of its stream.</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Retries inside one call after a transient fault (5xx, 408, 429, timeout, refused or dropped connection); 0 (the default) tries
    /// once. For a caller that uses the backend alone: profiling leaves it at 0 and retries in <see cref="MeasurementLoop"/>
    /// (<see cref="MeasurementRetryPolicy"/>), which refuses a backend that retries too; a load replay leaves it at 0 (a retry is late).
    /// </summary>
    public int MaxRetries { get; init; }

    /// <summary>Delay before the first retry; it doubles on each further retry (with jitter), up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Told before each retry (for progress displays); the reason never holds the key.</summary>
    public Action<MeasurementRetry>? OnRetry { get; init; }

    /// <summary>Clock of the per-attempt timeout and the retry delays (not of the measurements); tests pass a fake one.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Seed of the random prompt token ids (the same seed gives the same prompts).</summary>
    public int Seed { get; init; }

    /// <summary>The settings as text for logs, with the key and any user information in the address redacted.</summary>
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append(CultureInfo.InvariantCulture,
            $"BaseAddress = {(BaseAddress is null ? "" : Redact(BaseAddress))}, Model = {Model}, ApiKey = {(ApiKey is null ? "" : "[redacted]")}, ");
        builder.Append(CultureInfo.InvariantCulture,
            $"ApiKeyEnvironmentVariable = {ApiKeyEnvironmentVariable}, Prompt = {Prompt}, PromptTokenIds = {PromptTokenIdMin}..{PromptTokenIdMax}, ");
        builder.Append(CultureInfo.InvariantCulture,
            $"SendExactLengthHints = {SendExactLengthHints}, AttemptTimeout = {AttemptTimeout}, MaxRetries = {MaxRetries}, ");
        builder.Append(CultureInfo.InvariantCulture, $"RetryBaseDelay = {RetryBaseDelay}, MaxRetryDelay = {MaxRetryDelay}, Seed = {Seed}");
        return true;
    }

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(BaseAddress);
        ArgumentNullException.ThrowIfNull(TimeProvider);
        if (!BaseAddress.IsAbsoluteUri || (BaseAddress.Scheme != Uri.UriSchemeHttp && BaseAddress.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"base address must be an absolute http(s) URI such as http://127.0.0.1:8000/v1/; got '{Redact(BaseAddress)}'");
        }

        if (RefuseLocalAddresses && EndpointPolicy.Check(BaseAddress, allowLocal: false) is { } refused)
        {
            throw new ArgumentException($"base address: {refused}");
        }

        if (PromptTokenIdMin < 0 || PromptTokenIdMax <= PromptTokenIdMin)
        {
            throw new ArgumentException($"prompt token ids must satisfy 0 <= min < max; got {PromptTokenIdMin}..{PromptTokenIdMax}");
        }

        if (AttemptTimeout < TimeSpan.FromMilliseconds(10) || AttemptTimeout > TimeSpan.FromHours(24))
        {
            throw new ArgumentException($"attempt timeout must be between 10 ms and 24 h; got {AttemptTimeout}");
        }

        if (MaxRetries is < 0 or > 100)
        {
            throw new ArgumentException($"max retries must be in 0..100; got {MaxRetries}");
        }

        if (RetryBaseDelay < TimeSpan.Zero || MaxRetryDelay < RetryBaseDelay)
        {
            throw new ArgumentException($"retry delays must satisfy 0 <= base <= max; got {RetryBaseDelay} and {MaxRetryDelay}");
        }
    }

    /// <summary>The base address with any user information removed: safe to show.</summary>
    internal static string Redact(Uri uri) =>
        uri.IsAbsoluteUri && uri.UserInfo.Length > 0 ? new UriBuilder(uri) { UserName = "", Password = "" }.Uri.ToString() : uri.ToString();
}
