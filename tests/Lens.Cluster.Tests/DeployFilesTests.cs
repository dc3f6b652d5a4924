using System.Text.RegularExpressions;
using Lens.Silo;
using Microsoft.Extensions.Configuration;

namespace Lens.Cluster.Tests;

/// <summary>
/// The files in deploy/ cannot be built here (no image registry), so their contract with the code is checked instead: every
/// setting they give is one the server knows and passes its start-up validation, and the image copies every project it builds.
/// </summary>
public sealed partial class DeployFilesTests
{
    private const string TestKey = "compose-key-0123456789abcdef";

    private static readonly string Root = FindRoot();

    [Fact]
    public void Each_compose_silo_has_valid_settings_of_one_cluster_with_its_own_address()
    {
        var text = File.ReadAllText(Path.Combine(Root, "deploy", "compose", "compose.yaml"));
        var shared = Settings(text[text.IndexOf("x-silo:", StringComparison.Ordinal)..text.IndexOf("services:", StringComparison.Ordinal)]);
        var addresses = new HashSet<string>(StringComparer.Ordinal);
        foreach (var silo in new[] { "silo1", "silo2", "silo3" })
        {
            var start = text.IndexOf($"\n  {silo}:", StringComparison.Ordinal);
            Assert.True(start > 0, $"compose.yaml has no service {silo}");
            var block = text[start..NextService(text, start)];
            var settings = new Dictionary<string, string>(shared);
            foreach (var (key, value) in Settings(block))
            {
                settings[key] = value;
            }

            var options = Validated(settings);
            Assert.Equal(LensStorageMode.AzureTable, options.Storage);
            Assert.False(string.IsNullOrEmpty(options.OperatorApiKey), $"{silo} has no operator key, so Prometheus cannot scrape it");
            Assert.Equal("lens-compose", options.ClusterId);
            Assert.Contains($"ipv4_address: {options.SiloAddress}", block, StringComparison.Ordinal);
            Assert.True(addresses.Add(options.SiloAddress), $"{silo} advertises the address of another silo");
        }
    }

    [Fact]
    public void Prometheus_scrapes_with_the_operator_key_from_a_file()
    {
        var prometheus = File.ReadAllText(Path.Combine(Root, "deploy", "compose", "prometheus.yml"));
        Assert.Contains("credentials_file: /etc/prometheus/operator-key", prometheus, StringComparison.Ordinal);
        var compose = File.ReadAllText(Path.Combine(Root, "deploy", "compose", "compose.yaml"));
        Assert.Contains("Lens__OperatorApiKey: ${LENS_OPERATOR_KEY:?", compose, StringComparison.Ordinal);
        Assert.Contains("/etc/prometheus/operator-key", compose, StringComparison.Ordinal);
    }

    [Fact]
    public void The_kubernetes_silo_settings_are_known_and_valid_once_the_secret_is_filled_in()
    {
        var dir = Path.Combine(Root, "deploy", "kubernetes");
        var settings = Settings(File.ReadAllText(Path.Combine(dir, "configmap.yaml")));
        var deployment = File.ReadAllText(Path.Combine(dir, "deployment.yaml"));
        foreach (Match m in EnvironmentName().Matches(deployment))
        {
            settings[m.Groups[1].Value] = m.Groups[1].Value switch
            {
                "Lens__SiloAddress" => "10.244.1.7", // $(POD_IP)
                "Lens__AzureStorageConnectionString" => "UseDevelopmentStorage=true",
                "Lens__OperatorApiKey" => "operator-key-0123456789abcdef",
                var tenant => tenant.EndsWith("__ApiKey", StringComparison.Ordinal) ? TestKey : "",
            };
        }

        Assert.Contains("value: $(POD_IP)", deployment, StringComparison.Ordinal);
        Assert.Contains("fieldPath: status.podIP", deployment, StringComparison.Ordinal);
        Assert.Contains("fieldPath: metadata.name", deployment, StringComparison.Ordinal);
        Assert.Contains("replicas: 3", deployment, StringComparison.Ordinal);
        Assert.Contains("path: /health", deployment, StringComparison.Ordinal);
        Assert.Contains("terminationGracePeriodSeconds:", deployment, StringComparison.Ordinal);
        Assert.Contains("preStop:", deployment, StringComparison.Ordinal);
        var options = Validated(settings);
        Assert.Equal("operator-key-0123456789abcdef", options.OperatorApiKey); // /metrics is the operator's
        Assert.Equal(8080, options.HttpPort);
        Assert.Contains("containerPort: 8080", deployment, StringComparison.Ordinal);
        Assert.Contains($"containerPort: {options.SiloPort}", deployment, StringComparison.Ordinal);
        Assert.Contains($"containerPort: {options.GatewayPort}", deployment, StringComparison.Ordinal);

        // The Secret as committed holds placeholders that must stop a silo with a clear message, never start one.
        var secret = File.ReadAllText(Path.Combine(dir, "secret.yaml"));
        Assert.Contains("azure-storage-connection-string: REPLACE_ME", secret, StringComparison.Ordinal);
        settings["Lens__AzureStorageConnectionString"] = "REPLACE_ME";
        settings["Lens__Tenants__acme__ApiKey"] = "REPLACE_ME";
        var ex = Assert.Throws<LensConfigurationException>(() => Validated(settings));
        Assert.Contains("Lens:AzureStorageConnectionString is not a valid", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Lens:Tenants:acme:ApiKey must be at least 16 characters", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_image_copies_the_project_file_of_every_project_lens_is_built_from()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "deploy", "Dockerfile"));
        var pending = new Queue<string>(["Lens.Cli"]);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (pending.TryDequeue(out var project))
        {
            if (!seen.Add(project))
            {
                continue;
            }

            Assert.Contains($"COPY src/{project}/{project}.csproj src/{project}/", dockerfile, StringComparison.Ordinal);
            var csproj = File.ReadAllText(Path.Combine(Root, "src", project, project + ".csproj"));
            foreach (Match m in ProjectReference().Matches(csproj))
            {
                pending.Enqueue(m.Groups[1].Value);
            }
        }

        Assert.Contains("Lens.Silo", seen);
        Assert.Contains("USER $APP_UID", dockerfile, StringComparison.Ordinal);
        Assert.Contains("HEALTHCHECK", dockerfile, StringComparison.Ordinal);
    }

    /// <summary>The <c>Lens__*</c> settings of a YAML fragment (<c>Lens__X: value</c>), with compose's <c>${VAR:-default}</c> resolved.</summary>
    private static Dictionary<string, string> Settings(string yaml)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Match m in Setting().Matches(yaml))
        {
            var value = m.Groups[2].Value.Trim().Trim('"');
            value = Variable().Replace(value, v => v.Groups[2].Value == "-" ? v.Groups[3].Value : $"{TestKey}-{v.Groups[1].Value}");
            settings[m.Groups[1].Value] = value;
        }

        return settings;
    }

    /// <summary>Binds the settings as the environment would and validates them; every key must be an option the server reads.</summary>
    private static LensServerOptions Validated(Dictionary<string, string> settings)
    {
        foreach (var key in settings.Keys)
        {
            Assert.True(Known(key), $"{key} is not a setting of the LENS server");
        }

        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(p => KeyValuePair.Create(p.Key.Replace("__", ":", StringComparison.Ordinal), (string?)p.Value)))
            .Build();
        var options = LensServerOptions.FromConfiguration(configuration);
        options.Validate();
        return options;
    }

    private static bool Known(string key)
    {
        var parts = key.Split("__");
        if (parts is ["Lens", "Tenants", _, "ApiKey"])
        {
            return true;
        }

        var type = typeof(LensServerOptions);
        foreach (var part in parts.Skip(1))
        {
            var property = type.GetProperty(part);
            if (property is null)
            {
                return false;
            }

            type = property.PropertyType;
        }

        return parts.Length > 1 && parts[0] == "Lens";
    }

    private static int NextService(string text, int start)
    {
        var next = Regex.Match(text[(start + 1)..], @"\n  [a-z0-9]+:\n|\nnetworks:", RegexOptions.None, TimeSpan.FromSeconds(1));
        return next.Success ? start + 1 + next.Index : text.Length;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "deploy", "Dockerfile")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("deploy/Dockerfile not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^\s+(Lens__[A-Za-z0-9_]+):(.*)$", RegexOptions.Multiline)]
    private static partial Regex Setting();

    [GeneratedRegex(@"- name: (Lens__[A-Za-z0-9_]+)")]
    private static partial Regex EnvironmentName();

    [GeneratedRegex(@"\$\{([A-Z_]+):([-?])([^}]*)\}")]
    private static partial Regex Variable();

    [GeneratedRegex(@"<ProjectReference Include=""\.\.\\([A-Za-z.]+)\\")]
    private static partial Regex ProjectReference();
}
