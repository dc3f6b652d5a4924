using Lens.Silo;
using Microsoft.Extensions.Configuration;

namespace Lens.Service.Tests;

/// <summary>Each start-up check of <see cref="LensServerOptions.Validate"/> alone: one wrong setting, one clear message naming it.</summary>
public sealed class ServerOptionsValidationTests
{
    private const string Key = "acme-key-0123456789abcdef";

    // A well-formed account key (base64 of 64 zero bytes): never a real secret.
    private const string FakeAccountKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

    public static TheoryData<string, string, string> OneWrongSetting => new()
    {
        // setting, value, what the message must say
        { "SiloPort", "0", "Lens:SiloPort is 0; use 1..65535" },
        { "GatewayPort", "65536", "Lens:GatewayPort is 65536; use 1..65535" },
        { "HttpPort", "-1", "Lens:HttpPort is -1; use 1..65535 or 0 for any free port" },
        { "GatewayPort", "11111", "ports must differ: silo 11111, gateway 11111" },
        { "HttpPort", "30000", "ports must differ: silo 11111, gateway 30000, HTTP 30000" },
        { "HttpAddress", "localhost", "Lens:HttpAddress 'localhost' is not an IP address" },
        { "SiloAddress", "silo-0.lens", "Lens:SiloAddress 'silo-0.lens' is not an IP address" },
        { "ClusterId", " ", "Lens:ClusterId and Lens:ServiceId must not be empty" },
        { "ServiceId", "", "Lens:ClusterId and Lens:ServiceId must not be empty" },
        { "AzureStorageConnectionString", "", "Lens:AzureStorageConnectionString is empty" },
        { "AzureStorageConnectionString", "this is not a connection string", "Lens:AzureStorageConnectionString is not a valid Azure Storage connection string" },
        { "AzureStorageConnectionString", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=not*base64;EndpointSuffix=core.windows.net",
            "Lens:AzureStorageConnectionString is not a valid Azure Storage connection string" },
        { "TablePrefix", "9lives", "Lens:TablePrefix '9lives' must be 1..40 letters and digits starting with a letter" },
        { "TablePrefix", "lens-prod", "Lens:TablePrefix 'lens-prod' must be 1..40 letters and digits" },
        { "Grains:MaxMeasurementsPerBucket", "1", "Lens:Grains limits must be positive" },
        { "Grains:MaxDevicesPerTenant", "0", "Lens:Grains limits must be positive" },
        { "Grains:MaxAttempts", "0", "Lens:Grains retry settings are invalid" },
        { "Grains:ResumeCheckPeriod", "00:00:00.5", "Lens:Grains retry settings are invalid" },
        { "Otlp:MaxBodyBytes", "100", "Lens:Otlp:MaxBodyBytes is 100; use 1024..67108864" },
        { "Otlp:MaxDecompressedBytes", "2048", "Lens:Otlp:MaxDecompressedBytes is 2048; use Lens:Otlp:MaxBodyBytes (4194304)..268435456" },
        { "Otlp:MaxSpansPerRequest", "0", "Lens:Otlp:MaxSpansPerRequest is 0; use 1..100000" },
        { "Otlp:GrpcPort", "70000", "Lens:Otlp:GrpcPort is 70000; use 1..65535, or 0 for no OTLP/gRPC intake" },
        { "Otlp:GrpcPort", "11111", "Lens:Otlp:GrpcPort 11111 must differ from the silo, gateway and HTTP ports" },
        { "Grains:TrafficWindow", "0", "Lens:Grains:TrafficWindow must be in 1..1000000" },
    };

    [Theory]
    [MemberData(nameof(OneWrongSetting))]
    public void One_wrong_setting_gives_one_clear_message(string setting, string value, string message)
    {
        var options = Bind(new() { ["Lens:" + setting] = value });
        var ex = Assert.Throws<LensConfigurationException>(options.Validate);
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
        Assert.Single(ex.Message.Split('\n'), line => line.TrimStart().StartsWith("- ", StringComparison.Ordinal));
        Assert.DoesNotContain(FakeAccountKey, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("UseDevelopmentStorage=true")]
    [InlineData("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + FakeAccountKey +
                ";TableEndpoint=http://azurite:10002/devstoreaccount1;")]
    [InlineData("DefaultEndpointsProtocol=https;AccountName=lensprod;AccountKey=" + FakeAccountKey + ";EndpointSuffix=core.windows.net")]
    [InlineData("TableEndpoint=https://lensprod.table.core.windows.net/;SharedAccessSignature=sv=2019-02-02&sig=abc")]
    public void Usable_connection_strings_pass(string connectionString)
    {
        var options = Bind(new() { ["Lens:AzureStorageConnectionString"] = connectionString });
        options.Validate();
    }

    [Fact]
    public void A_bad_connection_string_is_reported_without_its_account_key()
    {
        var options = Bind(new()
        {
            ["Lens:AzureStorageConnectionString"] = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + FakeAccountKey + ";TableEndpoint=not a uri",
        });
        var ex = Assert.Throws<LensConfigurationException>(options.Validate);
        Assert.Contains("Lens:AzureStorageConnectionString is not a valid", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(FakeAccountKey, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("acme", "short", "Lens:Tenants:acme:ApiKey must be at least 16 characters")]
    [InlineData("a b", Key, "Lens:Tenants:")]
    public void Bad_tenant_settings_are_named_and_keys_never_printed(string tenant, string key, string message)
    {
        var options = Bind(new() { ["Lens:Tenants:acme:ApiKey"] = null, [$"Lens:Tenants:{tenant}:ApiKey"] = key });
        var ex = Assert.Throws<LensConfigurationException>(options.Validate);
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
        if (key != Key)
        {
            Assert.DoesNotContain(key, ex.Message.Replace("ApiKey", "", StringComparison.Ordinal), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Tenants_sharing_a_key_and_no_tenant_at_all_are_refused()
    {
        var shared = Bind(new() { ["Lens:Tenants:globex:ApiKey"] = Key });
        Assert.Contains("two tenants share an API key", Assert.Throws<LensConfigurationException>(shared.Validate).Message, StringComparison.Ordinal);

        var none = Bind(new() { ["Lens:Tenants:acme:ApiKey"] = null });
        Assert.Contains("no tenants", Assert.Throws<LensConfigurationException>(none.Validate).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Environment_style_keys_configure_a_cluster_silo()
    {
        // What deploy/ sets: Lens__Storage, Lens__SiloAddress from the pod IP, Lens__Tenants__{t}__ApiKey from a Secret.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Lens__Storage"] = "AzureTable",
            ["Lens__AzureStorageConnectionString"] = "UseDevelopmentStorage=true",
            ["Lens__SiloAddress"] = "10.1.2.3",
            ["Lens__HttpAddress"] = "0.0.0.0",
            ["Lens__HttpPort"] = "8080",
            ["Lens__ClusterId"] = "lens-prod",
            ["Lens__Tenants__acme__ApiKey"] = Key,
        }.ToDictionary(p => p.Key.Replace("__", ":", StringComparison.Ordinal), p => p.Value)).Build();
        var options = LensServerOptions.FromConfiguration(configuration);
        options.Validate();
        Assert.Equal(LensStorageMode.AzureTable, options.Storage);
        Assert.Equal("10.1.2.3", options.SiloAddress);
        Assert.Equal(8080, options.HttpPort);
        Assert.Equal("lens-prod", options.ClusterId);
        Assert.Equal(Key, options.Tenants["acme"]);
    }

    /// <summary>A valid cluster silo's settings (Azure Table storage) with <paramref name="changes"/> applied; null removes a key.</summary>
    private static LensServerOptions Bind(Dictionary<string, string?> changes)
    {
        var values = new Dictionary<string, string?>
        {
            ["Lens:Storage"] = "AzureTable",
            ["Lens:AzureStorageConnectionString"] = "UseDevelopmentStorage=true",
            ["Lens:Tenants:acme:ApiKey"] = Key,
        };
        foreach (var (key, value) in changes)
        {
            if (value is null)
            {
                values.Remove(key);
            }
            else
            {
                values[key] = value;
            }
        }

        return LensServerOptions.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values).Build());
    }
}
