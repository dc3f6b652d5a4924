namespace Lens.Cli.Tests;

/// <summary>Every command's help renders: a description with characters the console reads as markup broke two of them.</summary>
public sealed class HelpTests : IDisposable
{
    private readonly LensProcess _lens = new();

    public void Dispose() => _lens.Dispose();

    [Fact]
    public void Every_command_and_subcommand_prints_its_help()
    {
        var commands = Commands([]);
        Assert.Contains(["monitor"], commands);
        Assert.Contains(["engine", "serve"], commands);
        Assert.All(commands, command =>
        {
            var help = _lens.Run([.. command, "--help"]);
            var name = string.Join(' ', command);
            Assert.True(help.ExitCode == 0, $"lens {name} --help exited {help.ExitCode}: {help.Stdout}{help.Stderr}");
            Assert.Contains("OPTIONS:", help.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("error:", help.Stdout + help.Stderr, StringComparison.Ordinal);
        });
    }

    /// <summary>The commands <c>lens [parent] --help</c> lists (and theirs, for a branch), each as its path of names.</summary>
    private List<string[]> Commands(string[] parent)
    {
        var help = _lens.Run([.. parent, "--help"]);
        Assert.Equal(0, help.ExitCode);
        var found = new List<string[]>();
        var lines = help.Stdout.Split('\n');
        var start = Array.FindIndex(lines, l => l.TrimEnd() == "COMMANDS:");
        if (start < 0)
        {
            return found;
        }

        foreach (var line in lines.Skip(start + 1).TakeWhile(l => l.Trim().Length > 0))
        {
            // A command's line starts with four spaces and its name; a wrapped description line starts with more.
            if (line.Length > 4 && line[..4] == "    " && line[4] != ' ')
            {
                string[] path = [.. parent, line.Trim().Split(' ')[0]];
                found.Add(path);
                if (parent.Length == 0)
                {
                    found.AddRange(Commands(path));
                }
            }
        }

        return found;
    }
}
