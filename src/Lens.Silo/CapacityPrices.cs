using System.Globalization;
using Lens.Abstractions;
using Microsoft.Extensions.Configuration;

namespace Lens.Silo;

/// <summary>
/// Prices per chip-hour from the tenant's settings, for capacity candidates whose request gives none: <c>Lens:Tenants:{tenant}:
/// PricesPerChipHour:{deviceKind}</c> for the candidate's device kind, else <c>Lens:Tenants:{tenant}:PricePerChipHour</c>. A price in
/// the candidate or in the request wins over both.
/// </summary>
internal static class CapacityPrices
{
    public static CapacityRequest Apply(CapacityRequest? request, IConfiguration configuration, string tenant)
    {
        if (request?.Candidates is not { } candidates || request.PricePerChipHour is not null)
        {
            return request!;
        }

        var tenantSection = configuration.GetSection("Lens:Tenants").GetSection(tenant);
        var fallback = Parse(tenantSection["PricePerChipHour"]);
        var perKind = tenantSection.GetSection("PricesPerChipHour");
        return request with
        {
            Candidates = [.. candidates.Select(c => c is null || c.PricePerChipHour is not null
                ? c!
                : c with { PricePerChipHour = (c.DeviceKind is { } kind ? Parse(perKind[kind]) : null) ?? fallback })],
        };
    }

    private static double? Parse(string? text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= 0 && double.IsFinite(v) ? v : null;
}
