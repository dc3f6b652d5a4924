using Microsoft.AspNetCore.Http;

namespace Lens.WebConsole;

/// <summary>The console's URLs (one place, so that links, redirects and the cookie middleware agree).</summary>
public static class ConsolePaths
{
    public const string Root = "/ui";
    public const string SignIn = "/ui/signin";
    public const string SignOut = "/ui/signout";
    public const string Assets = "/ui/assets/";
    public const string WhatIf = "/ui/what-if";
    public const string Capacity = "/ui/capacity";

    public static string Devices(string device) => $"{Root}?device={Uri.EscapeDataString(device)}";

    public static string Deployment(string device, string deployment) => $"{Root}/devices/{Uri.EscapeDataString(device)}/deployments/{Uri.EscapeDataString(deployment)}";

    public static string Monitoring(string device, string deployment) => Deployment(device, deployment) + "/monitoring";

    public static string ModelDownload(string device, string deployment) => Deployment(device, deployment) + "/model.json";

    public static string MeasurementsDownload(string device, string deployment) => Deployment(device, deployment) + "/measurements.csv";

    /// <summary>Requests that belong to the console: its pages and the Blazor circuit.</summary>
    public static bool IsConsoleRequest(HttpContext context) =>
        context.Request.Path.StartsWithSegments(Root) || context.Request.Path.StartsWithSegments("/_blazor");
}
