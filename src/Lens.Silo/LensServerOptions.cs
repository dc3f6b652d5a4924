using System.Net;
using Lens.Abstractions;
using Lens.Grains;
using Lens.Measurement;
using Microsoft.Extensions.Configuration;

namespace Lens.Silo;

/// <summary>Where grain state, cluster membership and reminders live.</summary>
public enum LensStorageMode
{
    /// <summary>One process, no set-up: localhost clustering, in-memory grain storage and reminders. Nothing survives a stop.</summary>
    Embedded,

    /// <summary>
    /// Azure Table storage for grain state (<c>Microsoft.Orleans.Persistence.AzureStorage</c>), cluster membership and reminders,
    /// so several silos form one cluster and state survives restarts. <c>UseDevelopmentStorage=true</c> reaches Azurite.
    /// </summary>
    AzureTable,
}

/// <summary>
/// Settings of a LENS server (silo + HTTP API). Bind them from configuration section <c>Lens</c> with <see cref="FromConfiguration"/>
/// (tenants as <c>Lens:Tenants:{tenant}:ApiKey</c>) or set them in code; <see cref="Validate"/> runs at start.
/// </summary>
public sealed class LensServerOptions
{
    public LensStorageMode Storage { get; set; } = LensStorageMode.Embedded;

    /// <summary>Orleans cluster id: silos with the same one (and the same storage) form one cluster.</summary>
    public string ClusterId { get; set; } = "lens";

    /// <summary>Orleans service id: the name grain state is stored under; keep it across deployments of the same service.</summary>
    public string ServiceId { get; set; } = "lens";

    public int SiloPort { get; set; } = 11111;

    public int GatewayPort { get; set; } = 30000;

    /// <summary>HTTP port; 0 picks a free one (read it from <see cref="LensServer.HttpAddress"/>).</summary>
    public int HttpPort { get; set; } = 5080;

    /// <summary>Address the HTTP API listens on: loopback unless set (e.g. 0.0.0.0 inside a container).</summary>
    public string HttpAddress { get; set; } = "127.0.0.1";

    /// <summary>Address this silo listens on and advertises to other silos (AzureTable mode): loopback unless set.</summary>
    public string SiloAddress { get; set; } = "127.0.0.1";

    /// <summary>Azure Storage connection string for <see cref="LensStorageMode.AzureTable"/>, e.g. <c>UseDevelopmentStorage=true</c>.</summary>
    public string? AzureStorageConnectionString { get; set; }

    /// <summary>Prefix of the three tables (<c>{prefix}grains</c>, <c>{prefix}cluster</c>, <c>{prefix}reminders</c>): letters and digits.</summary>
    public string TablePrefix { get; set; } = "lens";

    /// <summary>A folder of extra engine profiles (<c>{name}.json</c>) that <c>reference</c> backends may name; null: shipped ones only.</summary>
    public string? EngineProfileDirectory { get; set; }

    /// <summary>Tenant name to API key. Merged with <c>Lens:Tenants:{tenant}:ApiKey</c> from configuration.</summary>
    public Dictionary<string, string> Tenants { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Each tenant's named measurement backends (tenant, then name): what its <c>openai</c> deployments may profile. Merged with
    /// <c>Lens:Tenants:{tenant}:Backends:{name}:Endpoint</c> (and <c>:ApiKey</c> or <c>:ApiKeyEnvironmentVariable</c>) from configuration.
    /// </summary>
    public Dictionary<string, Dictionary<string, LensBackendOptions>> TenantBackends { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Allow backends at loopback, link-local (cloud metadata) and unspecified addresses. Off: such endpoints are refused at start,
    /// and host names that resolve to them are refused when connecting. Turn on only for tests or a device on the silo's machine.
    /// </summary>
    public bool AllowLocalBackendAddresses { get; set; }

    /// <summary>
    /// The operator's credential for <c>/metrics</c> and the dashboard (header <c>X-Api-Key</c> or <c>Authorization: Bearer</c>),
    /// at least 16 characters. Unset: both answer 401 to everyone (OTLP export still works).
    /// </summary>
    public string? OperatorApiKey { get; set; }

    /// <summary>Failed authentications one client address may make per <see cref="AuthFailureWindow"/> before it is answered 429.</summary>
    public int AuthFailureLimit { get; set; } = 20;

    public TimeSpan AuthFailureWindow { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>What the metrics show.</summary>
    public LensMetricsOptions Metrics { get; set; } = new();

    /// <summary>Limits and retry settings of the grains.</summary>
    public LensGrainOptions Grains { get; set; } = new();

    /// <summary>Bounds of the OTLP trace intake (<c>Lens:Otlp</c>): body sizes and spans per export.</summary>
    public LensOtlpOptions Otlp { get; set; } = new();

    /// <summary>
    /// OTLP endpoint (gRPC, e.g. <c>http://127.0.0.1:4317</c>) that metrics and traces are exported to; off unless set.
    /// </summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>Path of the Prometheus scrape endpoint on the HTTP port (needs <see cref="OperatorApiKey"/>); empty: off.</summary>
    public string? MetricsPath { get; set; } = "/metrics";

    /// <summary>
    /// Path the Orleans Dashboard is mounted at on the HTTP port (e.g. <c>/dashboard</c>); off unless set. It shows every tenant's
    /// grains, so like <see cref="MetricsPath"/> it needs <see cref="OperatorApiKey"/>.
    /// </summary>
    public string? DashboardPath { get; set; }

    /// <summary>Reads section <c>Lens</c> of <paramref name="configuration"/> into a new options object.</summary>
    public static LensServerOptions FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = new LensServerOptions();
        var section = configuration.GetSection("Lens");
        section.Bind(options, o => o.ErrorOnUnknownConfiguration = false);
        options.Tenants = new Dictionary<string, string>(StringComparer.Ordinal);
        options.TenantBackends = new Dictionary<string, Dictionary<string, LensBackendOptions>>(StringComparer.Ordinal);
        AddTenants(options.Tenants, configuration);
        AddTenantBackends(options.TenantBackends, configuration);
        return options;
    }

    internal static void AddTenantBackends(Dictionary<string, Dictionary<string, LensBackendOptions>> backends, IConfiguration configuration)
    {
        foreach (var tenant in configuration.GetSection("Lens:Tenants").GetChildren())
        {
            foreach (var backend in tenant.GetSection("Backends").GetChildren())
            {
                if (!backends.TryGetValue(tenant.Key, out var named))
                {
                    backends[tenant.Key] = named = new Dictionary<string, LensBackendOptions>(StringComparer.Ordinal);
                }

                named[backend.Key] = backend.Get<LensBackendOptions>() ?? new LensBackendOptions();
            }
        }
    }

    /// <summary>
    /// The configured backends with their keys read (from <see cref="LensBackendOptions.ApiKey"/> or the operator's variable);
    /// call after <see cref="Validate"/>.
    /// </summary>
    public global::Lens.Grains.TenantBackends ToTenantBackends() => new(
        TenantBackends.ToDictionary(t => t.Key, t => (IReadOnlyDictionary<string, TenantBackend>)t.Value.ToDictionary(
            b => b.Key, b => new TenantBackend(new Uri(b.Value.Endpoint!), b.Value.ResolveApiKey()), StringComparer.Ordinal), StringComparer.Ordinal),
        AllowLocalBackendAddresses);

    internal static void AddTenants(Dictionary<string, string> tenants, IConfiguration configuration)
    {
        foreach (var tenant in configuration.GetSection("Lens:Tenants").GetChildren())
        {
            if (tenant["ApiKey"] is { } key)
            {
                tenants[tenant.Key] = key;
            }
        }
    }

    /// <summary>Throws <see cref="LensConfigurationException"/> naming every setting that is wrong.</summary>
    public void Validate()
    {
        var errors = new List<string>();
        CheckPort(errors, nameof(SiloPort), SiloPort, allowZero: false);
        CheckPort(errors, nameof(GatewayPort), GatewayPort, allowZero: false);
        CheckPort(errors, nameof(HttpPort), HttpPort, allowZero: true);
        if (SiloPort == GatewayPort || (HttpPort != 0 && (HttpPort == SiloPort || HttpPort == GatewayPort)))
        {
            errors.Add($"ports must differ: silo {SiloPort}, gateway {GatewayPort}, HTTP {HttpPort}");
        }

        if (Otlp.GrpcPort != 0 && (Otlp.GrpcPort == SiloPort || Otlp.GrpcPort == GatewayPort || Otlp.GrpcPort == HttpPort))
        {
            errors.Add($"Lens:Otlp:GrpcPort {Otlp.GrpcPort} must differ from the silo, gateway and HTTP ports");
        }

        if (!IPAddress.TryParse(HttpAddress, out _))
        {
            errors.Add($"Lens:HttpAddress '{HttpAddress}' is not an IP address (use 127.0.0.1 for loopback)");
        }

        if (!IPAddress.TryParse(SiloAddress, out _))
        {
            errors.Add($"Lens:SiloAddress '{SiloAddress}' is not an IP address (use 127.0.0.1 for loopback)");
        }

        if (string.IsNullOrWhiteSpace(ClusterId) || string.IsNullOrWhiteSpace(ServiceId))
        {
            errors.Add("Lens:ClusterId and Lens:ServiceId must not be empty");
        }

        if (!Enum.IsDefined(Storage))
        {
            errors.Add($"Lens:Storage '{Storage}' is not one of {string.Join(", ", Enum.GetNames<LensStorageMode>())}");
        }
        else if (Storage == LensStorageMode.AzureTable)
        {
            if (string.IsNullOrWhiteSpace(AzureStorageConnectionString))
            {
                errors.Add("Lens:Storage is AzureTable but Lens:AzureStorageConnectionString is empty (UseDevelopmentStorage=true reaches Azurite)");
            }
            else if (CheckConnectionString(AzureStorageConnectionString) is { } connectionError)
            {
                errors.Add(connectionError);
            }

            if (string.IsNullOrEmpty(TablePrefix) || TablePrefix.Length > 40 || !char.IsAsciiLetter(TablePrefix[0]) ||
                !TablePrefix.All(char.IsAsciiLetterOrDigit))
            {
                errors.Add($"Lens:TablePrefix '{TablePrefix}' must be 1..40 letters and digits starting with a letter (Azure table names)");
            }
        }

        if (Tenants.Count == 0)
        {
            errors.Add("no tenants: set Lens:Tenants:{tenant}:ApiKey for at least one tenant");
        }

        foreach (var (tenant, key) in Tenants)
        {
            if (LensNames.Check(tenant, "tenant") is { } reason)
            {
                errors.Add($"Lens:Tenants: {reason}");
            }

            if (string.IsNullOrEmpty(key) || key.Length < 16)
            {
                errors.Add($"Lens:Tenants:{tenant}:ApiKey must be at least 16 characters"); // the key itself is never printed
            }
        }

        foreach (var (tenant, backends) in TenantBackends)
        {
            if (!Tenants.ContainsKey(tenant))
            {
                errors.Add($"Lens:Tenants:{tenant}:Backends: tenant '{tenant}' has backends but no API key");
            }

            foreach (var (name, backend) in backends)
            {
                var at = $"Lens:Tenants:{tenant}:Backends:{name}";
                if (LensNames.Check(name, "backend name") is { } nameError)
                {
                    errors.Add($"{at}: {nameError}");
                }

                errors.AddRange(backend.Check(at, AllowLocalBackendAddresses));
            }
        }

        if (AuthFailureLimit is < 1 or > 1_000_000 || AuthFailureWindow <= TimeSpan.Zero || AuthFailureWindow > TimeSpan.FromHours(1))
        {
            errors.Add($"Lens:AuthFailureLimit must be 1..1000000 and Lens:AuthFailureWindow in (0, 1 h]; got {AuthFailureLimit} per {AuthFailureWindow}");
        }

        if (OperatorApiKey is { Length: > 0 and < 16 })
        {
            errors.Add("Lens:OperatorApiKey must be at least 16 characters");
        }

        if (OperatorApiKey is { Length: > 0 } && Tenants.ContainsValue(OperatorApiKey))
        {
            errors.Add("Lens:OperatorApiKey equals a tenant's API key; the operator needs a key of its own");
        }

        if (Tenants.Values.Distinct(StringComparer.Ordinal).Count() != Tenants.Count)
        {
            errors.Add("Lens:Tenants: two tenants share an API key; every tenant needs its own");
        }

        Otlp.Check(errors);
        try
        {
            Grains.Validate();
        }
        catch (InvalidOperationException ex)
        {
            errors.Add(ex.Message);
        }

        if (errors.Count > 0)
        {
            throw new LensConfigurationException("invalid LENS server settings:\n  - " + string.Join("\n  - ", errors));
        }
    }

    /// <summary>
    /// Why <paramref name="connectionString"/> cannot reach Azure Table storage, or null when it parses. The string (which holds
    /// an account key) is never part of the message.
    /// </summary>
    internal static string? CheckConnectionString(string connectionString)
    {
        const string Expected = "expected UseDevelopmentStorage=true, or DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=..., " +
                                "or TableEndpoint=...;SharedAccessSignature=...";
        try
        {
            _ = new Azure.Data.Tables.TableServiceClient(connectionString);
            return null;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException)
        {
            return $"Lens:AzureStorageConnectionString is not a valid Azure Storage connection string ({ex.GetType().Name}); {Expected}";
        }
    }

    private static void CheckPort(List<string> errors, string name, int port, bool allowZero)
    {
        if (port is < 0 or > 65535 || (port == 0 && !allowZero))
        {
            errors.Add($"Lens:{name} is {port}; use 1..65535{(allowZero ? " or 0 for any free port" : "")}");
        }
    }
}

/// <summary>
/// One backend the operator gives a tenant (<c>Lens:Tenants:{tenant}:Backends:{name}</c>): its OpenAI-compatible endpoint and the
/// bearer key sent to it, inline (<see cref="ApiKey"/>) or from a variable of the operator's choosing
/// (<see cref="ApiKeyEnvironmentVariable"/>); or neither, for an endpoint without a key.
/// </summary>
public sealed class LensBackendOptions
{
    /// <summary>The API root, e.g. <c>https://npu-a.internal:8000/v1/</c>.</summary>
    public string? Endpoint { get; set; }

    public string? ApiKey { get; set; }

    public string? ApiKeyEnvironmentVariable { get; set; }

    internal string? ResolveApiKey() =>
        ApiKey is { Length: > 0 } key ? key :
        ApiKeyEnvironmentVariable is { Length: > 0 } variable ? Environment.GetEnvironmentVariable(variable) : null;

    /// <summary>Every problem of this backend, each naming the setting at <paramref name="at"/> (never the key).</summary>
    internal IEnumerable<string> Check(string at, bool allowLocal)
    {
        if (!Uri.TryCreate(Endpoint, UriKind.Absolute, out var endpoint))
        {
            yield return $"{at}:Endpoint '{Endpoint}' is not an absolute http(s) URL such as https://npu-a.internal:8000/v1/";
        }
        else if (EndpointPolicy.Check(endpoint, allowLocal) is { } refused)
        {
            yield return $"{at}:Endpoint {refused}{(allowLocal ? "" : " (Lens:AllowLocalBackendAddresses)")}";
        }

        if (ApiKey is { Length: > 0 } && ApiKeyEnvironmentVariable is { Length: > 0 })
        {
            yield return $"{at}: set ApiKey or ApiKeyEnvironmentVariable, not both";
        }
        else if (ApiKeyEnvironmentVariable is { Length: > 0 } variable && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(variable)))
        {
            yield return $"{at}:ApiKeyEnvironmentVariable names {variable}, which is not set";
        }
    }
}

/// <summary>What the Prometheus and OTLP metrics show (<c>Lens:Metrics</c>).</summary>
public sealed class LensMetricsOptions
{
    /// <summary>
    /// Export the per-deployment tag <c>lens.deployment</c> (<c>tenant/device/deployment</c>). Off: every LENS metric is summed over
    /// tenants, devices and deployments, so a scrape names none of them.
    /// </summary>
    public bool TenantLabels { get; set; }
}

/// <summary>The server's settings are wrong; the message names each problem.</summary>
public sealed class LensConfigurationException(string message) : Exception(message);
