using System.Collections;
using System.Text;
using Lens.Core;

namespace Lens.Cli;

/// <summary>Reads a serving stack's own configuration for <c>--stack</c>: its config file, the process environment and
/// <c>--stack-set KEY=VALUE</c> pairs, later sources over earlier ones; files bounded in size.</summary>
internal static class StackFiles
{
    /// <summary>Largest stack config file read (a neuron config, an env file, an rbln_config).</summary>
    public const int MaxConfigBytes = 1 << 20;

    /// <summary>Largest bucketing file (<c>VLLM_BUCKETING_FROM_FILE</c>) read.</summary>
    public const int MaxBucketFileBytes = 4 << 20;

    /// <summary>The knobs: <paramref name="configFile"/> (JSON, or env lines for vLLM on Gaudi), then the process's <c>VLLM_*</c>
    /// variables when <paramref name="fromEnvironment"/>, then <paramref name="sets"/>.</summary>
    public static StackKnobs Read(string stack, string? configFile, bool fromEnvironment, IEnumerable<string>? sets)
    {
        var knobs = StackKnobs.Empty;
        if (configFile is not null)
        {
            var text = ReadBounded(configFile, "--stack-config", MaxConfigBytes);
            knobs = ServingStacks.TakesEnvLines(stack) ? StackKnobs.FromEnvLines(text, configFile) : StackKnobs.FromJson(text, configFile);
        }

        if (fromEnvironment)
        {
            var pairs = new List<KeyValuePair<string, string>>();
            foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
            {
                if (e.Key is string key && key.StartsWith("VLLM_", StringComparison.Ordinal) && e.Value is string value)
                {
                    pairs.Add(new(key, value));
                }
            }

            knobs = knobs.With(StackKnobs.FromPairs(pairs, "the environment"));
        }

        if (sets is not null)
        {
            var pairs = new List<KeyValuePair<string, string>>();
            foreach (var set in sets)
            {
                var eq = set.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    throw new StackConfigException($"--stack-set '{set}': expected KEY=VALUE, e.g. max_num_seqs=8 or VLLM_BUCKETING_STRATEGY=lin");
                }

                pairs.Add(new(set[..eq].Trim(), set[(eq + 1)..].Trim()));
            }

            knobs = knobs.With(StackKnobs.FromPairs(pairs, "--stack-set"));
        }

        return knobs;
    }

    /// <summary>Resolves the stack's deployment, reading <c>VLLM_BUCKETING_FROM_FILE</c> relative to the config file's folder.</summary>
    public static StackDeployment Resolve(string stack, StackKnobs knobs, string? configFile, DecodeConvention convention)
    {
        var folder = configFile is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(Path.GetFullPath(configFile))!;
        return ServingStacks.Resolve(stack, knobs, convention,
            name => ReadBounded(Path.IsPathRooted(name) ? name : Path.Combine(folder, name), "VLLM_BUCKETING_FROM_FILE", MaxBucketFileBytes));
    }

    /// <summary>Reads a text file of at most <paramref name="maxBytes"/>, naming <paramref name="option"/> in errors.</summary>
    public static string ReadBounded(string path, string option, int maxBytes)
    {
        if (!File.Exists(path))
        {
            throw new CliException($"{option} file '{path}' does not exist");
        }

        if (new FileInfo(path).Length > maxBytes)
        {
            throw new CliException($"{option} file '{path}' is over {maxBytes / 1024} KiB; a stack's configuration is far smaller");
        }

        return File.ReadAllText(path, Encoding.UTF8);
    }
}
