using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Lens.Otlp.Proto;

namespace Lens.Otlp;

/// <summary>
/// OTLP's JSON encoding of a trace export (OTLP/HTTP with <c>Content-Type: application/json</c>, and the files the OpenTelemetry
/// Collector's file exporter writes) read into the same messages as the protobuf encoding, so both take one path afterwards.
/// Per the OTLP specification: field names in lowerCamelCase (the proto's snake_case names are accepted too), 64-bit integers as
/// decimal strings or numbers, trace and span ids in hex (not needed here, skipped), unknown fields ignored.
/// </summary>
public static class OtlpJson
{
    public static ExportTraceServiceRequest Parse(ReadOnlySpan<byte> utf8, int maxSpans)
    {
        try
        {
            var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = 64 });
            using var document = JsonDocument.ParseValue(ref reader);
            if (reader.BytesConsumed != utf8.Length && !IsWhiteSpace(utf8[(int)reader.BytesConsumed..]))
            {
                throw new OtlpFormatException("the JSON body has content after its top-level object");
            }

            var spans = 0;
            var request = new ExportTraceServiceRequest();
            var root = Object(document.RootElement, "the body");
            foreach (var resourceSpans in Array(root, "resourceSpans"))
            {
                var rs = new ResourceSpans();
                if (Field(resourceSpans, "resource") is { } resource)
                {
                    rs.Resource = new Resource();
                    rs.Resource.Attributes.Add(Attributes(resource, "attributes"));
                }

                foreach (var scopeSpans in Array(resourceSpans, "scopeSpans"))
                {
                    var ss = new ScopeSpans();
                    foreach (var span in Array(scopeSpans, "spans"))
                    {
                        if (++spans > maxSpans)
                        {
                            throw new OtlpFormatException($"the export holds more than {maxSpans} spans; at most {maxSpans} are allowed in one request");
                        }

                        ss.Spans.Add(Span(span));
                    }

                    rs.ScopeSpans.Add(ss);
                }

                request.ResourceSpans.Add(rs);
            }

            return request;
        }
        catch (JsonException ex)
        {
            throw new OtlpFormatException($"the body is not OTLP JSON: {ex.Message}");
        }
        catch (InvalidOperationException ex)
        {
            throw new OtlpFormatException($"the body is not OTLP JSON: {ex.Message}");
        }
    }

    private static Span Span(JsonElement element)
    {
        var span = new Span();
        if (Field(element, "name") is { ValueKind: JsonValueKind.String } name)
        {
            span.Name = name.GetString()!;
        }

        if (Field(element, "startTimeUnixNano") is { } start)
        {
            span.StartTimeUnixNano = UInt64(start, "startTimeUnixNano");
        }

        if (Field(element, "endTimeUnixNano") is { } end)
        {
            span.EndTimeUnixNano = UInt64(end, "endTimeUnixNano");
        }

        span.Attributes.Add(Attributes(element, "attributes"));
        return span;
    }

    private static AnyValue Value(JsonElement element)
    {
        var value = new AnyValue();
        foreach (var property in Object(element, "an attribute value").EnumerateObject())
        {
            var v = property.Value;
            switch (Normal(property.Name))
            {
                case "stringvalue":
                    value.StringValue = v.ValueKind == JsonValueKind.String ? v.GetString()! : throw Bad("stringValue", "a string");
                    break;
                case "boolvalue":
                    value.BoolValue = v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Bad("boolValue", "true or false");
                    break;
                case "intvalue":
                    value.IntValue = Int64(v, "intValue");
                    break;
                case "doublevalue":
                    value.DoubleValue = Double(v, "doubleValue");
                    break;
                case "bytesvalue":
                    value.BytesValue = v.ValueKind == JsonValueKind.String && v.TryGetBytesFromBase64(out var bytes)
                        ? ByteString.CopyFrom(bytes)
                        : throw Bad("bytesValue", "base64 text");
                    break;
                case "arrayvalue":
                    value.ArrayValue = new ArrayValue();
                    foreach (var item in Array(v, "values"))
                    {
                        value.ArrayValue.Values.Add(Value(item));
                    }

                    break;
                case "kvlistvalue":
                    value.KvlistValue = new KeyValueList();
                    value.KvlistValue.Values.Add(Attributes(v, "values"));
                    break;
                default:
                    break;
            }
        }

        return value;
    }

    private static IEnumerable<KeyValue> Attributes(JsonElement owner, string field)
    {
        foreach (var kv in Array(owner, field))
        {
            var key = Field(kv, "key") is { ValueKind: JsonValueKind.String } k
                ? k.GetString()!
                : throw new OtlpFormatException("an attribute or key-value list entry has no string 'key'");
            yield return new KeyValue { Key = key, Value = Field(kv, "value") is { } v ? Value(v) : new AnyValue() };
        }
    }

    private static JsonElement Object(JsonElement element, string what) =>
        element.ValueKind == JsonValueKind.Object ? element : throw new OtlpFormatException($"{what} is not a JSON object");

    /// <summary>The elements of an array field; a missing or null field is empty (proto3 defaults), any other kind is an error.</summary>
    private static IEnumerable<JsonElement> Array(JsonElement owner, string field)
    {
        if (Field(Object(owner, $"the owner of '{field}'"), field) is not { } array || array.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        return array.ValueKind == JsonValueKind.Array ? array.EnumerateArray() : throw Bad(field, "an array");
    }

    /// <summary>A field by its lowerCamelCase or snake_case name.</summary>
    private static JsonElement? Field(JsonElement owner, string camel)
    {
        if (owner.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        var wanted = Normal(camel);
        foreach (var property in owner.EnumerateObject())
        {
            if (Normal(property.Name) == wanted)
            {
                return property.Value;
            }
        }

        return null;
    }

    private static string Normal(string name) =>
        name.Contains('_', StringComparison.Ordinal) ? name.Replace("_", "", StringComparison.Ordinal).ToLowerInvariant() : name.ToLowerInvariant();

    private static long Int64(JsonElement v, string field) => v.ValueKind switch
    {
        JsonValueKind.Number when v.TryGetInt64(out var n) => n,
        JsonValueKind.String when long.TryParse(v.GetString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) => n,
        _ => throw Bad(field, "a 64-bit integer (a number or a decimal string)"),
    };

    private static ulong UInt64(JsonElement v, string field) => v.ValueKind switch
    {
        JsonValueKind.Number when v.TryGetUInt64(out var n) => n,
        JsonValueKind.String when ulong.TryParse(v.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) => n,
        _ => throw Bad(field, "an unsigned 64-bit integer (a number or a decimal string)"),
    };

    private static double Double(JsonElement v, string field) => v.ValueKind switch
    {
        JsonValueKind.Number => v.GetDouble(),
        JsonValueKind.String when double.TryParse(v.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var x) => x,
        _ => throw Bad(field, "a number"),
    };

    private static OtlpFormatException Bad(string field, string expected) => new($"'{field}' is not {expected}");

    private static bool IsWhiteSpace(ReadOnlySpan<byte> rest)
    {
        foreach (var b in rest)
        {
            if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
            {
                return false;
            }
        }

        return true;
    }
}
