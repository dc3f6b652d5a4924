using Spectre.Console.Cli;

namespace Lens.Cli;

/// <summary>Commands beyond the core four (profile, demo, engine, serve), registered in one place.</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        _ = config;
    }
}
