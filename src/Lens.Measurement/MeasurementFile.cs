using System.Text;
using Lens.Core;

namespace Lens.Measurement;

/// <summary>
/// The output CSV of a run, held open for appending (others may read it; a second run is refused). On opening, a last line without
/// its newline (cut off by a crash) is removed; each appended measurement is one write of a whole line, then a flush.
/// </summary>
internal sealed class MeasurementFile : IDisposable
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);
    private readonly FileStream _guard;
    private readonly bool _flushToDisk;
    private FileStream _stream;

    private MeasurementFile(FileStream stream, FileStream guard, bool flushToDisk, bool grouped)
    {
        _stream = stream;
        _guard = guard;
        _flushToDisk = flushToDisk;
        Grouped = grouped;
    }

    public IReadOnlyList<MeasuredRequest> Existing { get; private set; } = [];

    public bool DroppedPartialLine { get; private set; }

    /// <summary>Whether rows carry <c>batch</c> and <c>group</c> (<see cref="LensCsv.BatchedMeasurementHeader"/>).</summary>
    public bool Grouped { get; }

    public int DroppedPartialGroupRows { get; private set; }

    private string Header => LensCsv.MeasurementHeaderFor(Grouped);

    public static MeasurementFile Open(string path, bool flushToDisk, bool grouped = false)
    {
        var full = Path.GetFullPath(path);
        if (Path.GetDirectoryName(full) is { Length: > 0 } directory)
        {
            Directory.CreateDirectory(directory);
        }

        // One writer at a time, while anyone may read the CSV: the writer holds an exclusive lock file beside it (an advisory lock on
        // Unix, released by the system even if the process dies).
        FileStream guard;
        try
        {
            guard = new FileStream(full + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException e)
        {
            throw new IOException($"cannot append measurements to {path}: another profiling run is writing it ({e.Message})", e);
        }

        FileStream? stream = null;
        try
        {
            stream = new FileStream(full, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
            var file = new MeasurementFile(stream, guard, flushToDisk, grouped);
            stream = null;
            try
            {
                file.ReadExisting(full, path);
                if (file._stream.Length == 0)
                {
                    file.Write(file.Header + "\n");
                }
            }
            catch
            {
                file._stream.Dispose();
                throw;
            }

            return file;
        }
        catch
        {
            stream?.Dispose();
            guard.Dispose();
            throw;
        }
    }

    public void Append(MeasuredRequest measurement) => Write(LensCsv.FormatMeasurement(measurement, Grouped) + "\n");

    /// <summary>Appends the rows of one group in a single write: a crash leaves at most a cut-off last line, never a torn group.</summary>
    public void Append(IReadOnlyList<MeasuredRequest> measurements)
    {
        var text = new StringBuilder();
        foreach (var m in measurements)
        {
            text.Append(LensCsv.FormatMeasurement(m, Grouped)).Append('\n');
        }

        Write(text.ToString());
    }

    public void Dispose()
    {
        _stream.Dispose();
        _guard.Dispose();
    }

    private void Write(string text)
    {
        var bytes = Utf8.GetBytes(text);
        _stream.Seek(0, SeekOrigin.End);
        _stream.Write(bytes);
        _stream.Flush(_flushToDisk);
    }

    /// <summary>
    /// Reads what the file holds: removes a cut-off last line, checks the header, and in a grouped file removes the rows of every group
    /// it holds in part (rewritten through a temporary file and a rename, so a crash now loses nothing whole).
    /// </summary>
    private void ReadExisting(string full, string path)
    {
        var stream = _stream;
        if (stream.Length == 0)
        {
            return;
        }

        var bytes = new byte[stream.Length];
        stream.Position = 0;
        stream.ReadExactly(bytes);
        if (bytes[^1] != (byte)'\n')
        {
            // A crash while appending: the last line is incomplete. Its numbers may look whole (cut at a comma), so never trust it.
            var keep = Array.LastIndexOf(bytes, (byte)'\n') + 1;
            stream.SetLength(keep);
            bytes = bytes[..keep];
            DroppedPartialLine = true;
            if (keep == 0)
            {
                return; // not even the header was complete: start afresh
            }
        }

        using var reader = new StreamReader(new MemoryStream(bytes), Utf8, detectEncodingFromByteOrderMarks: true);
        var text = reader.ReadToEnd();
        var header = text.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0 && !l.StartsWith('#'));
        if (header is null)
        {
            throw new InvalidDataException($"{path} holds no header; expected '{Header}' (or an empty or missing file)");
        }

        if (!string.Equals(header, Header, StringComparison.OrdinalIgnoreCase))
        {
            var why = Grouped ? "this plan runs groups (batch buckets), whose rows carry batch and group" : "this plan runs single requests";
            throw new InvalidDataException(
                $"{path} has the header '{header}', not '{Header}' ({why}); appending would misplace columns. " +
                "Write to a new file, or convert this one first");
        }

        var rows = LensCsv.ReadMeasurements(new StringReader(text), path);
        Existing = rows.Rows;
        if (Grouped)
        {
            DropPartialGroups(rows, text, full);
        }
    }

    private void DropPartialGroups(CsvRows<MeasuredRequest> rows, string text, string full)
    {
        var drop = MeasurementGroups.PartialRows(rows.Rows).Select(n => rows.Lines[n]).ToHashSet();
        if (drop.Count == 0)
        {
            return;
        }

        var lines = text.Split('\n');
        var rewritten = new StringBuilder(text.Length);
        for (var n = 0; n < lines.Length - 1; n++) // the text ends in '\n': the last element is empty
        {
            if (!drop.Contains(n + 1))
            {
                rewritten.Append(lines[n]).Append('\n');
            }
        }

        var temp = full + ".rewrite";
        using (var writer = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            writer.Write(Utf8.GetBytes(rewritten.ToString()));
            writer.Flush(flushToDisk: true);
        }

        _stream.Dispose();
        File.Move(temp, full, overwrite: true);
        _stream = new FileStream(full, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        Existing = [.. rows.Rows.Where((_, n) => !drop.Contains(rows.Lines[n]))];
        DroppedPartialGroupRows = drop.Count;
    }
}
