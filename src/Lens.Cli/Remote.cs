using Lens.Client;

namespace Lens.Cli;

/// <summary>A LENS server reached over HTTP (<c>--server URL --api-key-env VAR</c>), for the remote forms of the commands.</summary>
internal static class Remote
{
    public static LensHttpClient Connect(string server, string? apiKeyEnv, HttpMessageHandler? handler = null, bool binaryBatches = true)
    {
        if (!Uri.TryCreate(server, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
        {
            throw new CliException($"--server '{server}' is not an http(s) URL such as http://127.0.0.1:5080");
        }

        if (string.IsNullOrEmpty(apiKeyEnv))
        {
            throw new CliException("--server needs --api-key-env VAR: the environment variable holding your tenant's API key");
        }

        var key = Environment.GetEnvironmentVariable(apiKeyEnv);
        if (string.IsNullOrEmpty(key))
        {
            throw new CliException($"environment variable {apiKeyEnv} (named by --api-key-env) is not set");
        }

        var http = handler is null ? new HttpClient() : new HttpClient(handler);
        http.BaseAddress = uri;
        http.Timeout = TimeSpan.FromSeconds(100);
        return new LensHttpClient(http, key) { BinaryBatches = binaryBatches };
    }

    /// <summary>Checks the options every remote form needs, for settings validation.</summary>
    public static string? Missing(string? device, string? deployment, bool deploymentRequired = true) =>
        device is null ? "--server needs --device" : deploymentRequired && deployment is null ? "--server needs --deployment" : null;
}
