using System.Globalization;
using System.Text;

namespace Lens.Core;

/// <summary>A malformed CSV: names the file, the 1-based line and column, and the reason. Nothing of the file is used.</summary>
public sealed class CsvFormatException(string source, int line, string? column, string reason)
    : FormatException($"{source}:{line}: {(column is null ? "" : $"column '{column}': ")}{reason}")
{
    public string File { get; } = source;

    public int Line { get; } = line;

    public string? Column { get; } = column;

    public string Reason { get; } = reason;
}

/// <summary>Rows read from a CSV with the line each came from, for error messages that point at the file.</summary>
public sealed record CsvRows<T>(string Source, IReadOnlyList<T> Rows, IReadOnlyList<int> Lines);

/// <summary>
/// The project's CSV formats. Comma-separated, a header line naming the columns (any order, case-insensitive), other columns ignored,
/// blank lines and lines starting with '#' skipped. Reading is all-or-nothing: the first bad cell throws
/// <see cref="CsvFormatException"/> and no row is returned.
/// <list type="bullet">
/// <item>measurements: <c>input_len,output_len,e2e_ms</c>, optional <c>ttft_ms</c>, <c>bucket</c>, <c>batch</c> (size of the group
/// released at once, default 1) and <c>group</c> (the group's id).</item>
/// <item>request pairs: <c>input_len,output_len</c>.</item>
/// <item>plan: <c>bucket,input_len,output_len,repeat,role</c>, optional <c>batch</c> (default 1).</item>
/// </list>
/// </summary>
public static class LensCsv
{
    public const string MeasurementHeader = "bucket,input_len,output_len,e2e_ms,ttft_ms";
    public const string PlanHeader = "bucket,input_len,output_len,repeat,role";

    /// <summary>The measurement header when requests ran in groups (batch buckets): one row per request.</summary>
    public const string BatchedMeasurementHeader = "bucket,input_len,output_len,batch,group,e2e_ms,ttft_ms";

    /// <summary>The plan header when points run as groups (batch buckets).</summary>
    public const string BatchedPlanHeader = "bucket,input_len,output_len,repeat,role,batch";

    /// <summary>The largest group (batch bucket) a file may name.</summary>
    public const int MaxBatch = 65536;

    /// <summary>Reads measurements. Lengths must be whole numbers from 1; latencies positive and finite; TTFT at most E2E.</summary>
    public static CsvRows<MeasuredRequest> ReadMeasurements(TextReader reader, string source) =>
        Read(reader, source, ["input_len", "output_len", "e2e_ms"], (cells, line) =>
        {
            var i = cells.Int("input_len", 1, int.MaxValue);
            var o = cells.Int("output_len", 1, int.MaxValue);
            var e2e = cells.Double("e2e_ms");
            double? ttft = cells.Has("ttft_ms") && cells.Text("ttft_ms").Length > 0 ? cells.Double("ttft_ms") : null;
            if (ttft > e2e)
            {
                throw new CsvFormatException(source, line, "ttft_ms", $"TTFT {ttft} ms is above E2E {e2e} ms; the first token cannot come after the last");
            }

            BucketId? bucket = null;
            if (cells.Has("bucket") && cells.Text("bucket").Length > 0)
            {
                bucket = BucketId.TryParse(cells.Text("bucket"), out var b)
                    ? b
                    : throw new CsvFormatException(source, line, "bucket", $"'{cells.Text("bucket")}' is not a bucket id (prefill-N or decode-N)");
            }

            var batch = cells.Has("batch") && cells.Text("batch").Length > 0 ? cells.Int("batch", 1, MaxBatch) : 1;
            long? group = null;
            if (cells.Has("group") && cells.Text("group").Length > 0)
            {
                group = long.TryParse(cells.Text("group"), NumberStyles.None, CultureInfo.InvariantCulture, out var g)
                    ? g
                    : throw new CsvFormatException(source, line, "group", $"'{cells.Text("group")}' is not a group id (a whole number from 0)");
            }

            if (bucket is { Kind: BucketKind.Decode } named && named.Batch != batch)
            {
                throw new CsvFormatException(source, line, "batch", $"batch {batch} disagrees with bucket {named} (batch bucket {named.Batch})");
            }

            return new MeasuredRequest(i, o, e2e, ttft, bucket, batch, group);
        });

    /// <summary>Reads request pairs to predict or measure.</summary>
    public static CsvRows<RequestPair> ReadPairs(TextReader reader, string source) =>
        Read(reader, source, ["input_len", "output_len"],
            (cells, _) => new RequestPair(cells.Int("input_len", 1, int.MaxValue), cells.Int("output_len", 1, int.MaxValue)));

    /// <summary>Reads a workload trace: <c>arrival_ms,input_len,output_len</c> (arrival from the trace's start, zero or more).</summary>
    public static CsvRows<TraceRequest> ReadTrace(TextReader reader, string source) =>
        Read(reader, source, ["arrival_ms", "input_len", "output_len"], (cells, line) =>
        {
            var text = cells.Text("arrival_ms");
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var arrival) || !double.IsFinite(arrival) || arrival < 0)
            {
                throw new CsvFormatException(source, line, "arrival_ms", $"'{text}' is not a time in ms from the trace's start (a finite number >= 0)");
            }

            return new TraceRequest(arrival, cells.Int("input_len", 1, int.MaxValue), cells.Int("output_len", 1, int.MaxValue));
        });

    /// <summary>
    /// Reads requests a server served (<see cref="ObservedRequest"/>): <c>arrival_ms,input_len,output_len,ttft_ms,e2e_ms</c>, optional
    /// <c>queue_ms</c> and <c>replica</c>; the output of <c>lens replay</c> reads as it is, its <c>send_lag_ms</c> (the client's
    /// delay in sending, counted in its latencies) taken out as the server would see the request
    /// (<see cref="ObservedRequest.FromClient"/>). A row with a non-empty <c>error</c> column
    /// (a request that failed) is skipped and counted in <paramref name="failedRows"/>; any other bad cell fails the whole file.
    /// </summary>
    public static CsvRows<ObservedRequest> ReadObserved(TextReader reader, string source, out int failedRows)
    {
        var read = Read<ObservedRequest?>(reader, source, ["arrival_ms", "input_len", "output_len", "ttft_ms", "e2e_ms"], (cells, line) =>
        {
            if (cells.Has("error") && cells.Text("error").Length > 0)
            {
                return null;
            }

            double Number(string column)
            {
                var text = cells.Text(column);
                return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
                    ? v
                    : throw new CsvFormatException(source, line, column, $"'{text}' is not a finite number");
            }

            var arrival = Number("arrival_ms");
            var ttft = Number("ttft_ms");
            var e2e = Number("e2e_ms");
            double? queue = cells.Has("queue_ms") && cells.Text("queue_ms").Length > 0 ? Number("queue_ms") : null;
            var replica = cells.Has("replica") && cells.Text("replica").Length > 0 ? cells.Text("replica") : null;
            var input = cells.Int("input_len", 1, ObservedRequest.MaxLength);
            var output = cells.Int("output_len", 1, ObservedRequest.MaxLength);
            if (ObservedRequest.Problem(arrival, input, output, ttft, e2e, queue, replica) is { } problem)
            {
                throw new CsvFormatException(source, line, null, problem);
            }

            if (cells.Has("send_lag_ms") && cells.Text("send_lag_ms").Length > 0)
            {
                var lag = Number("send_lag_ms");
                if (ObservedRequest.SendLagProblem(lag, ttft) is { } bad)
                {
                    throw new CsvFormatException(source, line, "send_lag_ms", bad);
                }

                return ObservedRequest.FromClient(arrival, input, output, ttft, e2e, lag) with { QueueMs = queue, Replica = replica };
            }

            return new ObservedRequest(arrival, input, output, ttft, e2e, queue, replica);
        });
        var rows = new List<ObservedRequest>(read.Rows.Count);
        var lines = new List<int>(read.Rows.Count);
        for (var i = 0; i < read.Rows.Count; i++)
        {
            if (read.Rows[i] is { } row)
            {
                rows.Add(row);
                lines.Add(read.Lines[i]);
            }
        }

        failedRows = read.Rows.Count - rows.Count;
        return new CsvRows<ObservedRequest>(source, rows, lines);
    }

    /// <summary>
    /// Reads the public Azure LLM inference trace format: <c>TIMESTAMP,ContextTokens,GeneratedTokens</c>, the timestamp a date-time
    /// such as <c>2023-11-16 18:15:46.6805900</c> (read as UTC). Arrivals are in ms from the earliest row (the file need not be sorted);
    /// rows keep the file's order. ContextTokens is the prompt length, GeneratedTokens the output length (both from 1).
    /// </summary>
    public static CsvRows<TraceRequest> ReadAzureTrace(TextReader reader, string source)
    {
        var stamped = Read(reader, source, ["TIMESTAMP", "ContextTokens", "GeneratedTokens"], (cells, line) =>
        {
            var text = cells.Text("TIMESTAMP").Trim('"');
            if (!DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at))
            {
                throw new CsvFormatException(source, line, "TIMESTAMP", $"'{text}' is not a date-time such as 2023-11-16 18:15:46.6805900");
            }

            return (At: at.Ticks, Input: cells.Int("ContextTokens", 1, int.MaxValue), Output: cells.Int("GeneratedTokens", 1, int.MaxValue));
        });
        var first = stamped.Rows.Count == 0 ? 0 : stamped.Rows.Min(r => r.At);
        var rows = stamped.Rows.Select(r => new TraceRequest((r.At - first) / (double)TimeSpan.TicksPerMillisecond, r.Input, r.Output)).ToArray();
        return new CsvRows<TraceRequest>(source, rows, stamped.Lines);
    }

    /// <summary>
    /// Reads a trace in either format, told apart by the header: a <c>TIMESTAMP</c> column means the Azure format
    /// (<see cref="ReadAzureTrace"/>), anything else the LENS one (<see cref="ReadTrace"/>).
    /// </summary>
    public static CsvRows<TraceRequest> ReadAnyTrace(TextReader reader, string source)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var text = reader.ReadToEnd();
        var header = text.Split('\n').FirstOrDefault(l => !string.IsNullOrWhiteSpace(l) && !l.TrimStart().StartsWith('#'));
        var azure = header is not null && header.Split(',').Any(c => c.Trim().Trim('"').Equals("timestamp", StringComparison.OrdinalIgnoreCase));
        return azure ? ReadAzureTrace(new StringReader(text), source) : ReadTrace(new StringReader(text), source);
    }

    /// <summary>Reads a plan written by <see cref="WritePlan"/>.</summary>
    public static CsvRows<PlanRow> ReadPlan(TextReader reader, string source) =>
        Read(reader, source, ["bucket", "input_len", "output_len"], (cells, line) =>
        {
            var bucket = BucketId.TryParse(cells.Text("bucket"), out var b)
                ? b
                : throw new CsvFormatException(source, line, "bucket", $"'{cells.Text("bucket")}' is not a bucket id (prefill-N or decode-N)");
            var repeat = cells.Has("repeat") ? cells.Int("repeat", 0, PlanOptions.MaxRepeats) : 0;
            var role = PlanRole.Slope;
            if (cells.Has("role") && !Enum.TryParse(cells.Text("role"), ignoreCase: true, out role))
            {
                throw new CsvFormatException(source, line, "role", $"'{cells.Text("role")}' is not one of {string.Join(", ", Enum.GetNames<PlanRole>())}");
            }

            var batch = cells.Has("batch") && cells.Text("batch").Length > 0 ? cells.Int("batch", 1, MaxBatch) : bucket.Batch;
            if (batch != (bucket.Kind == BucketKind.Decode ? bucket.Batch : batch))
            {
                throw new CsvFormatException(source, line, "batch", $"batch {batch} disagrees with bucket {bucket} (batch bucket {bucket.Batch})");
            }

            return new PlanRow(bucket, cells.Int("input_len", 1, int.MaxValue), cells.Int("output_len", 1, int.MaxValue), repeat, role, batch);
        });

    /// <summary>Writes a plan; the <c>batch</c> column is written when any point runs as a group.</summary>
    public static void WritePlan(TextWriter writer, IReadOnlyCollection<PlanRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var batched = rows.Any(r => r.Batch != 1);
        writer.WriteLine(batched ? BatchedPlanHeader : PlanHeader);
        foreach (var r in rows)
        {
            writer.WriteLine(batched
                ? $"{r.Bucket},{r.InputLength},{r.OutputLength},{r.Repeat},{r.Role.ToString().ToLowerInvariant()},{r.Batch}"
                : $"{r.Bucket},{r.InputLength},{r.OutputLength},{r.Repeat},{r.Role.ToString().ToLowerInvariant()}");
        }
    }

    /// <summary>The measurement header: <see cref="BatchedMeasurementHeader"/> when requests ran in groups.</summary>
    public static string MeasurementHeaderFor(bool batched) => batched ? BatchedMeasurementHeader : MeasurementHeader;

    /// <summary>
    /// One measurement as a line of <see cref="MeasurementHeaderFor"/>(<paramref name="batched"/>); round-trips through
    /// <see cref="ReadMeasurements"/>.
    /// </summary>
    public static string FormatMeasurement(MeasuredRequest m, bool batched = false)
    {
        var ttft = m.TtftMs is { } t ? t.ToString("R", CultureInfo.InvariantCulture) : "";
        return batched
            ? string.Create(CultureInfo.InvariantCulture,
                $"{m.Bucket?.ToString() ?? ""},{m.InputLength},{m.OutputLength},{m.Batch},{m.Group?.ToString(CultureInfo.InvariantCulture) ?? ""},{m.E2eMs:R},{ttft}")
            : string.Create(CultureInfo.InvariantCulture, $"{m.Bucket?.ToString() ?? ""},{m.InputLength},{m.OutputLength},{m.E2eMs:R},{ttft}");
    }

    /// <summary>Writes measurements; the <c>batch</c> and <c>group</c> columns are written when any request ran in a group.</summary>
    public static void WriteMeasurements(TextWriter writer, IReadOnlyCollection<MeasuredRequest> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var batched = rows.Any(m => m.Batch != 1 || m.Group is not null);
        writer.WriteLine(MeasurementHeaderFor(batched));
        foreach (var m in rows)
        {
            writer.WriteLine(FormatMeasurement(m, batched));
        }
    }

    public const string PredictionHeader = "input_len,output_len,e2e_ms,ttft_ms,tpot_ms,e2e_low_ms,e2e_high_ms";

    public static void WritePredictions(TextWriter writer, IReadOnlyList<RequestPair> pairs, ReadOnlySpan<Prediction> predictions)
    {
        writer.WriteLine(PredictionHeader);
        var line = new StringBuilder();
        for (var n = 0; n < pairs.Count; n++)
        {
            var p = predictions[n];
            line.Clear();
            line.Append(CultureInfo.InvariantCulture,
                $"{pairs[n].InputLength},{pairs[n].OutputLength},{p.E2eMs:0.####},{p.TtftMs:0.####},");
            if (!double.IsNaN(p.TpotMs))
            {
                line.Append(CultureInfo.InvariantCulture, $"{p.TpotMs:0.####}");
            }

            line.Append(CultureInfo.InvariantCulture, $",{p.E2eLowMs:0.####},{p.E2eHighMs:0.####}");
            writer.WriteLine(line);
        }
    }

    private sealed class Cells(string source, int line, Dictionary<string, int> columns, string[] values)
    {
        public bool Has(string column) => columns.ContainsKey(column);

        public string Text(string column) => values[columns[column]].Trim();

        public int Int(string column, int min, int max)
        {
            var text = Text(column);
            if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
            {
                throw new CsvFormatException(source, line, column, $"'{text}' is not a whole number");
            }

            if (value < min || value > max)
            {
                throw new CsvFormatException(source, line, column,
                    $"{value} is out of range (allowed {min}..{(max == int.MaxValue ? "" : max.ToString(CultureInfo.InvariantCulture))})");
            }

            return (int)value;
        }

        public double Double(string column)
        {
            var text = Text(column);
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value))
            {
                throw new CsvFormatException(source, line, column, $"'{text}' is not a finite number");
            }

            if (value <= 0)
            {
                throw new CsvFormatException(source, line, column, $"{text} is not positive (a latency in ms must be above 0)");
            }

            return value;
        }
    }

    private static CsvRows<T> Read<T>(TextReader reader, string source, string[] required, Func<Cells, int, T> parse)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var rows = new List<T>();
        var lines = new List<int>();
        Dictionary<string, int>? columns = null;
        var fields = 0;
        var lineNumber = 0;
        while (reader.ReadLine() is { } text)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(text) || text.TrimStart().StartsWith('#'))
            {
                continue;
            }

            var values = text.Split(',');
            if (columns is null)
            {
                columns = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
                for (var c = 0; c < values.Length; c++)
                {
                    var name = values[c].Trim().Trim('"');
                    if (name.Length > 0 && !columns.TryAdd(name, c))
                    {
                        throw new CsvFormatException(source, lineNumber, name, "column appears twice in the header");
                    }
                }

                var missing = required.Where(r => !columns.ContainsKey(r)).ToArray();
                if (missing.Length > 0)
                {
                    throw new CsvFormatException(source, lineNumber, null,
                        $"header lacks {string.Join(", ", missing)}; expected a header with at least {string.Join(",", required)}");
                }

                fields = columns.Values.Max() + 1;
                continue;
            }

            if (values.Length < fields)
            {
                throw new CsvFormatException(source, lineNumber, null, $"has {values.Length} fields, the header has {fields}");
            }

            rows.Add(parse(new Cells(source, lineNumber, columns, values), lineNumber));
            lines.Add(lineNumber);
        }

        if (columns is null)
        {
            throw new CsvFormatException(source, Math.Max(1, lineNumber), null, $"is empty; expected a header with at least {string.Join(",", required)}");
        }

        return new CsvRows<T>(source, rows, lines);
    }
}
