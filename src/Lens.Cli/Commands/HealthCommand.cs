using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class HealthSettings : CommandSettings
{
    [CommandOption("--url <URL>")]
    [Description("The server's health endpoint.")]
    [DefaultValue("http://127.0.0.1:5080/health")]
    public string Url { get; init; } = "http://127.0.0.1:5080/health";

    [CommandOption("--timeout <SECONDS>")]
    [Description("Give up after this many seconds.")]
    [DefaultValue(3)]
    public int Timeout { get; init; } = 3;

    public override ValidationResult Validate() =>
        !Uri.TryCreate(Url, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https")
            ? ValidationResult.Error($"--url '{Url}' is not an http(s) URL such as http://127.0.0.1:5080/health")
            : Timeout is < 1 or > 300
                ? ValidationResult.Error($"--timeout must be in 1..300 seconds; got {Timeout}")
                : ValidationResult.Success();
}

/// <summary>
/// Exit 0 when a LENS server's health endpoint answers 2xx, else 1: the container image's HEALTHCHECK (its runtime image has no curl).
/// </summary>
public sealed class HealthCommand : AsyncCommand<HealthSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, HealthSettings settings, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(settings.Timeout) };
        try
        {
            using var response = await http.GetAsync(new Uri(settings.Url), cancellationToken);
            if (response.IsSuccessStatusCode)
            {
                Console.WriteLine($"healthy: {settings.Url} answered {(int)response.StatusCode}");
                return LensApp.Ok;
            }

            Console.Error.WriteLine($"unhealthy: {settings.Url} answered {(int)response.StatusCode} {response.ReasonPhrase}");
            return LensApp.Failure;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"unhealthy: {settings.Url} did not answer ({ex.Message})");
            return LensApp.Failure;
        }
    }
}
