using System.Text;
using Lens.Abstractions;
using Lens.Client;
using Lens.Core;
using Lens.Grains;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Lens.WebConsole;

/// <summary>The console's downloads (signed-in tenant only): the fitted model JSON and every bucket's measurements as CSV.</summary>
internal static class ConsoleDownloads
{
    public static void Map(WebApplication app)
    {
        const string deployment = ConsolePaths.Root + "/devices/{device}/deployments/{deployment}";
        app.MapGet(deployment + "/model.json", (HttpContext http, string device, string deployment) => Handle(http, async lens =>
        {
            var json = await lens.GetModelJsonAsync(device, deployment);
            return Results.File(Encoding.UTF8.GetBytes(json), "application/json", $"{deployment}.model.json");
        })).ExcludeFromDescription();

        app.MapGet(deployment + "/measurements.csv", (HttpContext http, string device, string deployment) => Handle(http, async lens =>
        {
            var text = await MeasurementsCsvAsync(lens, device, deployment);
            return Results.File(Encoding.UTF8.GetBytes(text), "text/csv", $"{deployment}.measurements.csv");
        })).ExcludeFromDescription();
    }

    /// <summary>Every fitted measurement of the deployment in the CSV form <c>lens fit</c> reads, bucket by bucket.</summary>
    public static async Task<string> MeasurementsCsvAsync(LensClusterClient lens, string device, string deployment)
    {
        var info = await lens.GetDeploymentAsync(device, deployment);
        var rows = new List<Core.MeasuredRequest>();
        foreach (var bucket in info.Buckets)
        {
            var records = await lens.GetBucketMeasurementsAsync(device, info.Id, bucket);
            rows.AddRange(records.Select(r => r.ToMeasurement()));
        }

        using var writer = new StringWriter();
        LensCsv.WriteMeasurements(writer, rows);
        return writer.ToString();
    }

    private static async Task<IResult> Handle(HttpContext http, Func<LensClusterClient, Task<IResult>> body)
    {
        if (http.User.Tenant() is not { } tenant)
        {
            return Results.Redirect(ConsolePaths.SignIn);
        }

        try
        {
            return await body(new LensClusterClient(http.RequestServices.GetRequiredService<IClusterClient>(), tenant));
        }
        catch (LensException ex)
        {
            var status = ex.Kind switch
            {
                LensErrorKind.NotFound => StatusCodes.Status404NotFound,
                LensErrorKind.Validation or LensErrorKind.OutOfRange => StatusCodes.Status400BadRequest,
                _ => StatusCodes.Status409Conflict,
            };
            return Results.Problem(ex.Message, statusCode: status, title: "Download not available");
        }
    }
}
