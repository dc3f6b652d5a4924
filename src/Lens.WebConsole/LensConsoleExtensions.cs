using System.Reflection;
using System.Security.Claims;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Lens.WebConsole;

/// <summary>
/// Hosts the LENS web console in an ASP.NET Core application that also runs the silo (its <see cref="IClusterClient"/>): pages under
/// <see cref="ConsolePaths.Root"/>, the Blazor circuit at <c>/_blazor</c>, two embedded assets under <c>/ui/assets/</c>.
/// </summary>
public static class LensConsoleExtensions
{
    /// <summary>Registers the console: Razor components (interactive server), its sign-in cookie and the tenant lookup.</summary>
    /// <param name="resolveTenant">The tenant an API key belongs to, or null (the HTTP API's own lookup).</param>
    public static IServiceCollection AddLensConsole(this IServiceCollection services, Func<string, string?> resolveTenant)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(resolveTenant);
        services.AddSingleton(new ConsoleSignIn(resolveTenant, TimeProvider.System));
        services.AddRazorComponents().AddInteractiveServerComponents();
        services.AddCascadingAuthenticationState();
        services.AddAuthorizationCore();
        services.AddAntiforgery();
        services.AddAuthentication().AddCookie(ConsoleSignIn.Scheme, o =>
        {
            o.Cookie.Name = "lens.console";
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest; // Secure whenever the console is reached over HTTPS
            o.Cookie.Path = "/";
            o.LoginPath = ConsolePaths.SignIn;
            o.ExpireTimeSpan = TimeSpan.FromHours(8);
            o.SlidingExpiration = true;
            // A key that was changed or removed from the server's settings ends the sessions opened with it.
            o.Events.OnValidatePrincipal = context =>
            {
                var signIn = context.HttpContext.RequestServices.GetRequiredService<ConsoleSignIn>();
                if (!signIn.StillValid(context.Principal, context.Properties))
                {
                    context.RejectPrincipal();
                }

                return Task.CompletedTask;
            };
        });
        return services;
    }

    /// <summary>Maps the console's pages, circuit, assets, downloads and sign-out; call on the application after the API's routes.</summary>
    public static WebApplication MapLensConsole(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        // Only the console's own requests read the sign-in cookie; the HTTP API keeps its X-Api-Key header.
        app.UseWhen(ConsolePaths.IsConsoleRequest, branch => branch.Use(async (context, next) =>
        {
            var result = await context.AuthenticateAsync(ConsoleSignIn.Scheme);
            if (result.Succeeded)
            {
                context.User = result.Principal;
            }

            await next(context);
        }));
        app.UseAntiforgery();

        MapAsset(app, "console.css", "text/css; charset=utf-8");
        MapAsset(app, "blazor.web.js", "text/javascript; charset=utf-8");
        ConsoleDownloads.Map(app);
        app.MapPost(ConsolePaths.SignOut, async (HttpContext context, IAntiforgery antiforgery) =>
        {
            await antiforgery.ValidateRequestAsync(context);
            await context.SignOutAsync(ConsoleSignIn.Scheme);
            return Results.Redirect(ConsolePaths.SignIn + "?signedOut=1");
        }).DisableAntiforgery().ExcludeFromDescription(); // validated above, before anything changes
        app.MapRazorComponents<Components.App>().AddInteractiveServerRenderMode();
        return app;
    }

    private static void MapAsset(WebApplication app, string name, string contentType)
    {
        var bytes = ReadResource(name);
        var etag = $"\"{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes))[..16]}\"";
        app.MapGet(ConsolePaths.Assets + name, (HttpContext context) =>
        {
            context.Response.Headers.ETag = etag;
            context.Response.Headers.CacheControl = "no-cache";
            return context.Request.Headers.IfNoneMatch == etag ? Results.StatusCode(StatusCodes.Status304NotModified) : Results.Bytes(bytes, contentType);
        }).ExcludeFromDescription();
    }

    private static byte[] ReadResource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
                           ?? throw new InvalidOperationException($"the console asset '{name}' is not embedded in Lens.WebConsole");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>The signed-in tenant, or null.</summary>
    public static string? Tenant(this ClaimsPrincipal? user) => user?.FindFirst(ConsoleSignIn.TenantClaim)?.Value;
}
