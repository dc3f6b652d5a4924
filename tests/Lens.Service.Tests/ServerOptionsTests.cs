using Lens.Silo;
using Microsoft.Extensions.Configuration;

namespace Lens.Service.Tests;

public sealed class ServerOptionsTests
{
    [Fact]
    public void Options_bind_from_configuration()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Lens:Storage"] = "AzureTable",
            ["Lens:AzureStorageConnectionString"] = "UseDevelopmentStorage=true",
            ["Lens:SiloPort"] = "12000",
            ["Lens:HttpPort"] = "0",
            ["Lens:TablePrefix"] = "lensprod",
            ["Lens:Grains:MaxAttempts"] = "7",
            ["Lens:Tenants:acme:ApiKey"] = "acme-key-0123456789abcdef",
            ["Lens:Tenants:globex:ApiKey"] = "globex-key-0123456789abcdef",
        }).Build();
        var options = LensServerOptions.FromConfiguration(configuration);
        Assert.Equal(LensStorageMode.AzureTable, options.Storage);
        Assert.Equal(12000, options.SiloPort);
        Assert.Equal(0, options.HttpPort);
        Assert.Equal(7, options.Grains.MaxAttempts);
        Assert.Equal("acme-key-0123456789abcdef", options.Tenants["acme"]);
        Assert.Equal(2, options.Tenants.Count);
        options.Validate();
    }

    [Fact]
    public void Invalid_options_name_every_problem_and_never_a_key()
    {
        var options = new LensServerOptions
        {
            Storage = LensStorageMode.AzureTable,
            SiloPort = 0,
            GatewayPort = 70000,
            HttpAddress = "localhost:80",
            TablePrefix = "1-bad",
            Tenants = { ["acme"] = "short-secret", ["bad/name"] = "0123456789abcdef0123" },
        };
        var ex = Assert.Throws<LensConfigurationException>(options.Validate);
        foreach (var part in new[] { "SiloPort", "GatewayPort", "HttpAddress", "AzureStorageConnectionString", "TablePrefix", "acme:ApiKey", "bad/name" })
        {
            Assert.Contains(part, ex.Message, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("short-secret", ex.Message, StringComparison.Ordinal);
        Assert.Contains("no tenants", Assert.Throws<LensConfigurationException>(new LensServerOptions().Validate).Message, StringComparison.Ordinal);
    }
}
