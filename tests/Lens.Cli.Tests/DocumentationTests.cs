using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Lens.Cli.Tests;

/// <summary>What a newcomer follows from the README: its links stay inside the repository, and the CLI packs as the 'lens' tool.</summary>
public sealed partial class DocumentationTests
{
    private static readonly string Root = FindRoot();

    [Fact]
    public void Readme_and_docs_link_only_to_files_inside_the_repository()
    {
        var pages = new[] { Path.Combine(Root, "README.md") }.Concat(Directory.GetFiles(Path.Combine(Root, "docs"), "*.md")).ToArray();
        var checkedLinks = 0;
        foreach (var page in pages)
        {
            var text = File.ReadAllText(page);
            Assert.DoesNotContain("shared/design", text, StringComparison.Ordinal);
            foreach (Match link in Link().Matches(text))
            {
                var target = link.Groups["target"].Value.Split('#')[0];
                if (target.Length == 0 || target.Contains("://", StringComparison.Ordinal))
                {
                    continue;
                }

                var full = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(page)!, target));
                Assert.True(full.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal),
                    $"{Path.GetFileName(page)} links {target}, outside the repository");
                Assert.True(File.Exists(full) || Directory.Exists(full), $"{Path.GetFileName(page)} links {target}, which does not exist");
                checkedLinks++;
            }
        }

        Assert.True(checkedLinks >= 4, $"only {checkedLinks} relative links found");
    }

    [Fact]
    public void The_cli_packs_as_a_dotnet_tool_named_lens()
    {
        var project = XDocument.Load(Path.Combine(Root, "src", "Lens.Cli", "Lens.Cli.csproj"));
        string? Property(string name) => project.Descendants(name).SingleOrDefault()?.Value;

        Assert.Equal("true", Property("PackAsTool"));
        Assert.Equal("lens", Property("ToolCommandName"));
        Assert.Contains($"dotnet tool install --global --add-source artifacts {Property("PackageId")}",
            File.ReadAllText(Path.Combine(Root, "README.md")), StringComparison.Ordinal);
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LENS.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("LENS.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"\]\((?<target>[^)\s]+)\)")]
    private static partial Regex Link();
}
