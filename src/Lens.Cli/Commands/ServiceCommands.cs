using System.ComponentModel;
using System.Globalization;
using Lens.Silo;
using Microsoft.Extensions.Configuration;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Lens.Cli.Commands;

public sealed class ServeSettings : CommandSettings
{
    [CommandOption("--config <FILE>")]
    [Description("JSON settings (section Lens). Environment variables (Lens__HttpPort=...) and the options below override it.")]
    public string? Config { get; init; }

    [CommandOption("--storage <MODE>")]
    [Description("embedded (in memory, one process) or azure-table (durable; several silos form one cluster).")]
    public string? Storage { get; init; }

    [CommandOption("--connection-string-env <VAR>")]
    [Description("With azure-table: the environment variable holding the Azure Storage connection string (UseDevelopmentStorage=true reaches Azurite).")]
    public string? ConnectionStringEnv { get; init; }

    [CommandOption("--http-port <PORT>")]
    [Description("HTTP API port (default 5080).")]
    public int? HttpPort { get; init; }

    [CommandOption("--http-address <IP>")]
    [Description("HTTP API address (default 127.0.0.1; 0.0.0.0 in a container).")]
    public string? HttpAddress { get; init; }

    [CommandOption("--silo-port <PORT>")]
    [Description("Orleans silo-to-silo port (default 11111).")]
    public int? SiloPort { get; init; }

    [CommandOption("--gateway-port <PORT>")]
    [Description("Orleans client gateway port (default 30000).")]
    public int? GatewayPort { get; init; }

    [CommandOption("--tenant <NAME>")]
    [Description("Add a tenant whose API key is in the variable named by the --api-key-env in the same place; repeat the pair for " +
                 "more tenants. Tenants also come from settings: Lens__Tenants__NAME__ApiKey=... (environment) or " +
                 "Lens:Tenants:NAME:ApiKey (--config), and their backends from Lens__Tenants__NAME__Backends__BACKEND__Endpoint " +
                 "and ...__ApiKey (see docs/security.md).")]
    public string[] Tenant { get; init; } = [];

    [CommandOption("--api-key-env <VAR>")]
    [Description("With --tenant, once per tenant and in the same order: the environment variable holding its API key (at least 16 characters).")]
    public string[] ApiKeyEnv { get; init; } = [];

    public override ValidationResult Validate()
    {
        if (Tenant.Length != ApiKeyEnv.Length)
        {
            return ValidationResult.Error(
                $"give one --api-key-env per --tenant, in the same order; got {Tenant.Length} --tenant and {ApiKeyEnv.Length} --api-key-env");
        }

        if (Tenant.Distinct(StringComparer.Ordinal).Count() != Tenant.Length)
        {
            return ValidationResult.Error("each --tenant may be given once");
        }

        return Storage is null or "embedded" or "azure-table"
            ? ValidationResult.Success()
            : ValidationResult.Error($"--storage must be embedded or azure-table; got '{Storage}'");
    }
}

/// <summary>Runs a LENS silo with its HTTP API until Ctrl+C (architecture.md, "Hosts and edges").</summary>
public sealed class ServeCommand : AsyncCommand<ServeSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, ServeSettings settings, CancellationToken cancellationToken)
    {
        var builder = new ConfigurationBuilder();
        if (settings.Config is not null)
        {
            if (!File.Exists(settings.Config))
            {
                throw new CliException($"--config file '{settings.Config}' does not exist");
            }

            builder.AddJsonFile(Path.GetFullPath(settings.Config), optional: false);
        }

        var options = LensServerOptions.FromConfiguration(builder.AddEnvironmentVariables().Build());
        if (settings.Storage is not null)
        {
            options.Storage = settings.Storage == "azure-table" ? LensStorageMode.AzureTable : LensStorageMode.Embedded;
        }

        if (settings.ConnectionStringEnv is { } variable)
        {
            options.AzureStorageConnectionString = Environment.GetEnvironmentVariable(variable)
                ?? throw new CliException($"environment variable {variable} (named by --connection-string-env) is not set");
        }

        options.HttpPort = settings.HttpPort ?? options.HttpPort;
        options.HttpAddress = settings.HttpAddress ?? options.HttpAddress;
        options.SiloPort = settings.SiloPort ?? options.SiloPort;
        options.GatewayPort = settings.GatewayPort ?? options.GatewayPort;
        foreach (var (tenant, keyVariable) in settings.Tenant.Zip(settings.ApiKeyEnv))
        {
            options.Tenants[tenant] = Environment.GetEnvironmentVariable(keyVariable)
                ?? throw new CliException($"environment variable {keyVariable} (named by --api-key-env for tenant {tenant}) is not set");
        }

        options.Validate(); // before anything starts: every wrong setting named at once
        Console.Error.WriteLine(
            $"lens serve: {options.Storage} storage, HTTP on {options.HttpAddress}:{options.HttpPort}, silo {options.SiloPort}, gateway {options.GatewayPort}, " +
            $"{options.Tenants.Count} tenant(s); Ctrl+C stops.");
        var host = options.HttpAddress is "0.0.0.0" or "::" ? "127.0.0.1" : options.HttpAddress.Contains(':', StringComparison.Ordinal) ? $"[{options.HttpAddress}]" : options.HttpAddress;
        Console.Error.WriteLine($"lens serve: web console at http://{host}:{options.HttpPort}/ui (sign in with a tenant's API key)");

        // Ctrl+C and SIGTERM reach the host's own lifetime, which LensHost.RunAsync watches.
        await LensHost.RunAsync(options, cancellationToken);
        return LensApp.Ok;
    }
}

public sealed class StatusSettings : CommandSettings
{
    [CommandOption("--server <URL>")]
    [Description("The LENS server, e.g. http://127.0.0.1:5080.")]
    public string? Server { get; init; }

    [CommandOption("--api-key-env <VAR>")]
    [Description("The environment variable holding your tenant's API key.")]
    public string? ApiKeyEnv { get; init; }

    [CommandOption("--device <NAME>")]
    [Description("The device.")]
    public string? Device { get; init; }

    [CommandOption("--deployment <ID>")]
    [Description("A deployment: its profiling progress and buckets. Without it, the device's deployments.")]
    public string? Deployment { get; init; }

    [CommandOption("--json")]
    [Description("Print as JSON.")]
    public bool Json { get; init; }

    public override ValidationResult Validate() =>
        Server is null ? ValidationResult.Error("--server is required") :
        Remote.Missing(Device, Deployment, deploymentRequired: false) is { } missing ? ValidationResult.Error(missing) : ValidationResult.Success();
}

/// <summary>What a LENS server holds for a device or deployment: deployments, profiling progress, buckets and their health.</summary>
public sealed class StatusCommand : AsyncCommand<StatusSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, StatusSettings settings, CancellationToken cancellationToken)
    {
        var client = Remote.Connect(settings.Server!, settings.ApiKeyEnv);
        if (settings.Deployment is null)
        {
            var list = await client.ListDeploymentsAsync(settings.Device!, cancellationToken);
            if (settings.Json)
            {
                CliJson.Write(list);
                return LensApp.Ok;
            }

            var table = new Table().AddColumns("deployment", "model", "buckets", "model version", "created");
            foreach (var d in list)
            {
                table.AddRow(d.Id, d.Spec.Model, d.Buckets.Length.ToString(CultureInfo.InvariantCulture),
                    d.ModelVersion.ToString(CultureInfo.InvariantCulture), d.CreatedAt.ToString("u", CultureInfo.InvariantCulture));
            }

            AnsiConsole.Write(table);
            return LensApp.Ok;
        }

        var progress = await client.GetProfileProgressAsync(settings.Device!, settings.Deployment, cancellationToken);
        var buckets = await client.GetBucketsAsync(settings.Device!, settings.Deployment, cancellationToken);
        if (settings.Json)
        {
            CliJson.Write(new { progress, buckets });
            return LensApp.Ok;
        }

        AnsiConsole.MarkupLineInterpolated(
            $"[bold]{settings.Deployment}[/]: profiling {progress.State}, {progress.Done}/{progress.Total}{(progress.LastError is null ? "" : $", last error: {progress.LastError}")}");
        var grid = new Table().AddColumns("bucket", "version", "S (ms)", "A estimates", "measurements", "stale", "last profiled", "note");
        foreach (var b in buckets)
        {
            grid.AddRow(b.Bucket, b.Version.ToString(CultureInfo.InvariantCulture), b.StepMs?.ToString("0.####", CultureInfo.InvariantCulture) ?? "-",
                string.Join(", ", b.PrefillEstimates.Select(e => e.ValueMs.ToString("0.##", CultureInfo.InvariantCulture))),
                b.MeasurementCount.ToString(CultureInfo.InvariantCulture), b.Stale ? "yes" : "",
                b.LastProfiled?.ToString("u", CultureInfo.InvariantCulture) ?? "-", b.Warning ?? "");
        }

        AnsiConsole.Write(grid);
        return LensApp.Ok;
    }
}
