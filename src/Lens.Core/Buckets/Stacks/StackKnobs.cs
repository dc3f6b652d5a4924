using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Lens.Core;

/// <summary>
/// A serving stack's own configuration values, by the stack's own names (<c>max_num_seqs</c>, <c>VLLM_BUCKETING_STRATEGY</c>,
/// <c>context_encoding_buckets</c>, ...), read from the stack's config file (a JSON object, or <c>KEY=VALUE</c> lines for environment
/// variables) or from <c>KEY=VALUE</c> pairs. Every value remembers where it came from (file and line or key), so an out-of-range
/// value is reported as <c>FILE:LINE: KEY ...: allowed ...</c>. Immutable; bounded (at most <see cref="MaxKeys"/> keys and
/// <see cref="MaxListLength"/> list entries).
/// </summary>
public sealed class StackKnobs
{
    /// <summary>Most keys accepted from one source.</summary>
    public const int MaxKeys = 1024;

    /// <summary>Most entries in one list value.</summary>
    public const int MaxListLength = 4096;

    private readonly Dictionary<string, (JsonNode? Value, string Where)> _values;

    private StackKnobs(Dictionary<string, (JsonNode? Value, string Where)> values, string source)
    {
        _values = values;
        Source = source;
    }

    /// <summary>No values: every knob takes the stack's default.</summary>
    public static StackKnobs Empty { get; } = new([], "defaults");

    /// <summary>Where the values came from (a file name, <c>--stack-set</c>, <c>environment</c>).</summary>
    public string Source { get; }

    /// <summary>The keys given, in no particular order.</summary>
    public IEnumerable<string> Keys => _values.Keys;

    /// <summary>Parses a JSON object (an NxD Inference neuron config, a vLLM config, an rbln_config); <paramref name="source"/> names it in errors.</summary>
    public static StackKnobs FromJson(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 16, CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException ex)
        {
            throw new StackConfigException($"{source}: not JSON: {ex.Message}");
        }
        catch (ArgumentException ex) when (ex is not StackConfigException)
        {
            throw new StackConfigException($"{source}: {ex.Message} (a key given twice?)");
        }

        if (root is not JsonObject obj)
        {
            throw new StackConfigException($"{source}: expected a JSON object of the stack's configuration keys");
        }

        return FromObject(obj, source, prefix: "");
    }

    /// <summary>
    /// Parses environment-variable lines <c>KEY=VALUE</c> (blank lines and <c># comments</c> skipped, an optional leading
    /// <c>export</c>, values optionally quoted), as a shell env file or <c>docker --env-file</c> writes them.
    /// </summary>
    public static StackKnobs FromEnvLines(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        var values = new Dictionary<string, (JsonNode?, string)>(StringComparer.Ordinal);
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            if (line.StartsWith("export ", StringComparison.Ordinal))
            {
                line = line[7..].TrimStart();
            }

            var eq = line.IndexOf('=', StringComparison.Ordinal);
            var where = $"{source}:{i + 1}";
            if (eq <= 0)
            {
                throw new StackConfigException($"{where}: expected KEY=VALUE; got '{Clip(line)}'");
            }

            var key = line[..eq].Trim();
            var value = line[(eq + 1)..].Trim();
            if (value.Length >= 2 && (value[0] == '"' || value[0] == '\'') && value[^1] == value[0])
            {
                value = value[1..^1];
            }

            Add(values, key, JsonValue.Create(value), where, source);
        }

        return new StackKnobs(values, source);
    }

    /// <summary>Knobs from <c>KEY=VALUE</c> pairs (<c>--stack-set</c>, the process environment); a value that reads as JSON
    /// (a number, a list <c>[1,2]</c>, an object, <c>true</c>) is taken as such, anything else as text.</summary>
    public static StackKnobs FromPairs(IEnumerable<KeyValuePair<string, string>> pairs, string source)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var values = new Dictionary<string, (JsonNode?, string)>(StringComparer.Ordinal);
        foreach (var (key, value) in pairs)
        {
            JsonNode? node;
            try
            {
                node = value.Length > 0 && (char.IsDigit(value[0]) || value[0] is '[' or '{' or '-') || value is "true" or "false"
                    ? JsonNode.Parse(value)
                    : JsonValue.Create(value);
            }
            catch (JsonException)
            {
                node = JsonValue.Create(value);
            }

            Add(values, key, node, source, source);
        }

        return new StackKnobs(values, source);
    }

    /// <summary>These knobs with <paramref name="overrides"/> on top (a key given in both takes the override's value).</summary>
    public StackKnobs With(StackKnobs overrides)
    {
        ArgumentNullException.ThrowIfNull(overrides);
        var merged = new Dictionary<string, (JsonNode?, string)>(_values, StringComparer.Ordinal);
        foreach (var (key, value) in overrides._values)
        {
            merged[key] = value;
        }

        return new StackKnobs(merged, overrides._values.Count == 0 ? Source : _values.Count == 0 ? overrides.Source : $"{Source} + {overrides.Source}");
    }

    public bool Has(string key) => _values.TryGetValue(key, out var v) && v.Value is not null;

    /// <summary>Where a key's value came from (<c>file:line</c>, the file, or the file and the object holding the key), for messages.</summary>
    public string Where(string key) => _values.TryGetValue(key, out var v) ? v.Where : Source;

    /// <summary>An integer in <paramref name="min"/>..<paramref name="max"/>, or null when the key is absent.</summary>
    public int? Int(string key, int min, int max)
    {
        if (!_values.TryGetValue(key, out var entry) || entry.Value is null)
        {
            return null;
        }

        if (!TryInt(entry.Value, out var value) || value < min || value > max)
        {
            throw Bad(key, $"is {Show(entry.Value)}; allowed an integer in {min}..{max}");
        }

        return value;
    }

    /// <summary>A boolean (<c>true</c>/<c>false</c>, <c>1</c>/<c>0</c>, as environment variables write them), or null when absent.</summary>
    public bool? Bool(string key)
    {
        if (!_values.TryGetValue(key, out var entry) || entry.Value is null)
        {
            return null;
        }

        if (entry.Value is JsonValue v)
        {
            if (v.TryGetValue<bool>(out var b))
            {
                return b;
            }

            var text = v.TryGetValue<string>(out var s) ? s.Trim().ToLowerInvariant() : TryInt(v, out var n) ? n.ToString(CultureInfo.InvariantCulture) : "";
            switch (text)
            {
                case "true" or "1" or "yes" or "on":
                    return true;
                case "false" or "0" or "no" or "off":
                    return false;
            }
        }

        throw Bad(key, $"is {Show(entry.Value)}; allowed true or false");
    }

    /// <summary>A text value, or null when absent.</summary>
    public string? Text(string key) =>
        !_values.TryGetValue(key, out var entry) || entry.Value is null ? null
        : entry.Value is JsonValue v && v.TryGetValue<string>(out var s) ? s
        : entry.Value.ToJsonString();

    /// <summary>A list of integers (a JSON array, or <c>1,2,4</c> as text), each in <paramref name="min"/>..<paramref name="max"/>;
    /// null when absent.</summary>
    public int[]? IntList(string key, int min, int max)
    {
        if (!_values.TryGetValue(key, out var entry) || entry.Value is null)
        {
            return null;
        }

        var items = entry.Value switch
        {
            JsonArray a => [.. a],
            JsonValue v when v.TryGetValue<string>(out var s) => s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(p => (JsonNode?)JsonValue.Create(p)).ToList(),
            _ => throw Bad(key, $"is {Show(entry.Value)}; allowed a list of integers in {min}..{max}, e.g. [128, 256, 512]"),
        };
        if (items.Count == 0 || items.Count > MaxListLength)
        {
            throw Bad(key, $"has {items.Count} entries; allowed 1..{MaxListLength} integers in {min}..{max}");
        }

        var result = new int[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i] is null || !TryInt(items[i]!, out result[i]) || result[i] < min || result[i] > max)
            {
                throw Bad(key, $"entry #{i + 1} is {Show(items[i])}; allowed integers in {min}..{max}");
            }
        }

        return result;
    }

    /// <summary>A list of integer pairs <c>[[a, b], ...]</c> (Furiosa's <c>(batch, attention size)</c> buckets), each component in
    /// 1..<paramref name="max"/>; null when absent.</summary>
    public (int First, int Second)[]? PairList(string key, int max)
    {
        if (!_values.TryGetValue(key, out var entry) || entry.Value is null)
        {
            return null;
        }

        if (entry.Value is not JsonArray a || a.Count == 0 || a.Count > MaxListLength)
        {
            throw Bad(key, $"is {Show(entry.Value)}; allowed a list of 1..{MaxListLength} pairs [batch, length], e.g. [[1, 128], [4, 256]]");
        }

        var result = new (int, int)[a.Count];
        for (var i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonArray p || p.Count != 2 || p[0] is null || p[1] is null || !TryInt(p[0]!, out var x) || !TryInt(p[1]!, out var y) ||
                x < 1 || x > max || y < 1 || y > max)
            {
                throw Bad(key, $"entry #{i + 1} is {Show(a[i])}; allowed a pair [batch, length] of integers in 1..{max}");
            }

            result[i] = (x, y);
        }

        return result;
    }

    /// <summary>A nested object (a JSON object, or text holding one, as vLLM's CLI takes <c>--override-neuron-config '{...}'</c>) as
    /// knobs of their own, or null when absent.</summary>
    public StackKnobs? Object(string key)
    {
        if (!_values.TryGetValue(key, out var entry) || entry.Value is null)
        {
            return null;
        }

        var node = entry.Value;
        if (node is JsonValue v && v.TryGetValue<string>(out var s))
        {
            try
            {
                node = JsonNode.Parse(s, documentOptions: new JsonDocumentOptions { MaxDepth = 16 });
            }
            catch (JsonException ex)
            {
                throw Bad(key, $"is not a JSON object: {ex.Message}");
            }
        }

        return node is JsonObject obj ? FromObject(obj, entry.Where, key) : throw Bad(key, $"is {Show(node)}; allowed a JSON object");
    }

    /// <summary>An error naming the key, where it came from, and what is allowed.</summary>
    public StackConfigException Bad(string key, string problem) => new($"{Where(key)}: {key} {problem}");

    private static StackKnobs FromObject(JsonObject obj, string source, string prefix)
    {
        var values = new Dictionary<string, (JsonNode?, string)>(StringComparer.Ordinal);
        var where = prefix.Length == 0 ? source : $"{source} {prefix}";
        try
        {
            foreach (var (key, value) in obj)
            {
                Add(values, key, value, where, source);
            }
        }
        catch (InvalidOperationException ex)
        {
            throw new StackConfigException($"{where}: {ex.Message} (a key given twice?)");
        }
        catch (ArgumentException ex) when (ex is not StackConfigException)
        {
            throw new StackConfigException($"{where}: {ex.Message} (a key given twice?)");
        }

        return new StackKnobs(values, source);
    }

    private static void Add(Dictionary<string, (JsonNode?, string)> values, string key, JsonNode? value, string where, string source)
    {
        if (key.Length is 0 or > 128)
        {
            throw new StackConfigException($"{where}: a key must have 1..128 characters");
        }

        if (values.Count >= MaxKeys)
        {
            throw new StackConfigException($"{source}: more than {MaxKeys} keys");
        }

        values[key] = (value, where);
    }

    private static bool TryInt(JsonNode node, out int value)
    {
        value = 0;
        if (node is not JsonValue v)
        {
            return false;
        }

        if (v.TryGetValue(out value))
        {
            return true;
        }

        if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue)
        {
            value = (int)d;
            return true;
        }

        return v.TryGetValue<string>(out var s) && int.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
    }

    private static string Show(JsonNode? node) => node is null ? "null" : Clip(node.ToJsonString());

    private static string Clip(string text) => text.Length <= 60 ? text : text[..57] + "...";
}

/// <summary>A serving stack's configuration that LENS cannot read or that breaks the stack's own rules; the message names the file,
/// line or key, and the allowed range.</summary>
public sealed class StackConfigException(string message) : ArgumentException(message);
