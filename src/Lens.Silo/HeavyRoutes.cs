using Lens.Grains;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Lens.Silo;

/// <summary>
/// The per-tenant budget of heavy routes: a route opts in with one line, <c>.WithHeavyBudget()</c>. Past the tenant's (or the
/// silo's) budget of heavy calls running or waiting (<see cref="HeavyWorkBudget"/>), the call is answered 429 with
/// <c>Retry-After</c> before its body is read; admitted calls hold their place until they answer. Their CPU-heavy part runs on the
/// silo's <see cref="HeavyWorkScheduler"/>, off the threads that answer predictions.
/// </summary>
public static class HeavyRoutes
{
    /// <summary>Seconds a refused client should wait: about one heavy call's length (a simulation of a million requests is ~2 s of CPU).</summary>
    public const string RetryAfterSeconds = "2";

    /// <summary>Puts the route under the tenant's heavy-call budget.</summary>
    public static RouteHandlerBuilder WithHeavyBudget(this RouteHandlerBuilder route)
    {
        ArgumentNullException.ThrowIfNull(route);
        return route.AddEndpointFilter(AdmitAsync).ProducesProblem(StatusCodes.Status429TooManyRequests);
    }

    private static async ValueTask<object?> AdmitAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var tenant = (string)http.Items[LensApi.TenantItem]!; // the /v1 group's authentication ran first
        using var lease = http.RequestServices.GetRequiredService<HeavyWorkBudget>().TryEnter(tenant, out var refusal);
        if (lease is null)
        {
            http.Response.Headers.RetryAfter = RetryAfterSeconds;
            return Results.Problem(refusal, statusCode: StatusCodes.Status429TooManyRequests, title: "Too many heavy calls");
        }

        RequestContext.Set(HeavyWorkBudget.AdmittedKey, true); // the grain call below carries the lease: not counted twice
        try
        {
            return await next(context);
        }
        finally
        {
            RequestContext.Remove(HeavyWorkBudget.AdmittedKey);
        }
    }
}
