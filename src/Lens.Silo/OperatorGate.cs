using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Lens.Silo;

/// <summary>
/// The operator's surfaces (<see cref="LensServerOptions.MetricsPath"/>, <see cref="LensServerOptions.DashboardPath"/>) need
/// <see cref="LensServerOptions.OperatorApiKey"/> in <c>X-Api-Key</c> or <c>Authorization: Bearer</c>: they name every tenant,
/// device and deployment. Without a configured key they answer 401 to everyone. Failures spend the client's
/// <see cref="AuthFailures"/> budget like a tenant's.
/// </summary>
internal static class OperatorGate
{
    public static void Use(WebApplication app, LensServerOptions options)
    {
        PathString[] paths = [.. new[] { options.MetricsPath, options.DashboardPath }.Where(p => p is { Length: > 1 }).Select(p => new PathString(p))];
        if (paths.Length == 0)
        {
            return;
        }

        byte[]? digest = options.OperatorApiKey is { Length: > 0 } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;
        app.UseWhen(http => paths.Any(p => http.Request.Path.StartsWithSegments(p)), branch => branch.Use(async (http, next) =>
        {
            if (digest is not null && AuthFailures.SameKey(Presented(http.Request), digest))
            {
                await next(http);
                return;
            }

            var failures = http.RequestServices.GetRequiredService<AuthFailures>();
            var refusal = failures.Throttled(http);
            if (refusal is null)
            {
                failures.Failed(http, "operator");
                refusal = Results.Problem(
                    digest is null
                        ? "this endpoint is the operator's; set Lens:OperatorApiKey on the server and send it in X-Api-Key or Authorization: Bearer"
                        : "send the operator's key (Lens:OperatorApiKey) in X-Api-Key or Authorization: Bearer",
                    statusCode: StatusCodes.Status401Unauthorized, title: "Operator key required");
            }

            await refusal.ExecuteAsync(http);
        }));
    }

    private static string? Presented(HttpRequest request)
    {
        if (request.Headers[LensApi.ApiKeyHeader] is { Count: 1 } keys)
        {
            return keys[0];
        }

        var authorization = request.Headers.Authorization;
        return authorization.Count == 1 && authorization[0] is { } value && value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            ? value["Bearer ".Length..].Trim()
            : null;
    }
}
