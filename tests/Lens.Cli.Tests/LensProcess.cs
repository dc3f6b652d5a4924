using System.Diagnostics;

namespace Lens.Cli.Tests;

/// <summary>Runs the real <c>lens</c> program (the built lens.dll) in a temporary folder and captures its output.</summary>
internal sealed class LensProcess : IDisposable
{
    private static readonly string LensDll = Path.Combine(AppContext.BaseDirectory, "lens.dll");

    public string Folder { get; } = Directory.CreateTempSubdirectory("lens-cli-").FullName;

    public string PathOf(string name) => Path.Combine(Folder, name);

    public void Write(string name, string text) => File.WriteAllText(PathOf(name), text);

    public string Read(string name) => File.ReadAllText(PathOf(name));

    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>Environment variables given to every program started.</summary>
    public Dictionary<string, string> Environment { get; } = [];

    public Result Run(params string[] args)
    {
        using var process = Start(args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"lens {string.Join(' ', args)} did not finish in 2 minutes");
        }

        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Starts lens without waiting: for servers. The caller kills it.</summary>
    public Process Start(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = Folder, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(LensDll);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["COLUMNS"] = "200";
        foreach (var (name, value) in Environment)
        {
            start.Environment[name] = value;
        }

        return Process.Start(start)!;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
            // best effort: a temp folder left behind is harmless
        }
    }
}
