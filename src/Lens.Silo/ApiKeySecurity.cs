using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Lens.Silo;

/// <summary>Declares the tenant's <c>X-Api-Key</c> in the OpenAPI document and applies it to every <c>/v1</c> operation.</summary>
internal static class ApiKeySecurity
{
    public const string SchemeName = "ApiKey";

    public static Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[SchemeName] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey,
            In = ParameterLocation.Header,
            Name = LensApi.ApiKeyHeader,
            Description = "The tenant's API key; every /v1 route needs it and sees only that tenant's devices.",
        };
        var requirement = new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(SchemeName, document)] = [] };
        foreach (var (path, item) in document.Paths)
        {
            if (!path.StartsWith("/v1/", StringComparison.Ordinal) || item.Operations is null)
            {
                continue;
            }

            foreach (var operation in item.Operations.Values)
            {
                operation.Security ??= [];
                operation.Security.Add(requirement);
            }
        }

        return Task.CompletedTask;
    }
}
