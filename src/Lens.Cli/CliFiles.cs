using System.Text;
using Lens.Core;

namespace Lens.Cli;


/// <summary>File access for commands, with errors that name the file and the option it came from.</summary>
internal static class CliFiles
{
    public static TextReader Open(string path, string option)
    {
        if (!File.Exists(path))
        {
            throw new CliException($"{option} file '{path}' does not exist");
        }

        return new StreamReader(path, Encoding.UTF8);
    }

    public static CsvRows<MeasuredRequest> ReadMeasurements(string path, string option)
    {
        using var reader = Open(path, option);
        return LensCsv.ReadMeasurements(reader, path);
    }

    public static DeploymentModel ReadModel(string path, string option = "--model")
    {
        using var reader = Open(path, option);
        return ModelJson.Deserialize(reader.ReadToEnd(), path);
    }

    /// <summary>
    /// Writes through a temporary file and renames, so a failure never leaves a half-written output. A failure names
    /// <paramref name="path"/> as given, never the temporary file.
    /// </summary>
    public static void WriteAtomically(string path, Action<TextWriter> write) => ReplaceAtomically(path, "", temp =>
    {
        using var writer = new StreamWriter(temp, append: false, new UTF8Encoding(false));
        write(writer);
    });

    /// <summary>
    /// Has <paramref name="writeTemp"/> write a temporary file beside <paramref name="path"/> (named with <paramref name="extension"/>,
    /// for writers that choose the format by it), then renames it over <paramref name="path"/>.
    /// </summary>
    public static void ReplaceAtomically(string path, string extension, Action<string> writeTemp)
    {
        var full = Path.GetFullPath(path);
        var temp = full + ".tmp-" + Environment.ProcessId + extension;
        try
        {
            if (Directory.Exists(full))
            {
                throw new IOException("it is a directory");
            }

            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            writeTemp(temp);
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            var reason = ex is UnauthorizedAccessException ? "permission denied" : ex.Message.Replace(temp, full, StringComparison.Ordinal);
            throw new CliException($"cannot write '{path}': {reason}");
        }
        finally
        {
            TryDelete(temp);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Nothing was written there, or the directory refuses us: the error that matters is already on its way.
        }
    }

    /// <summary>Checks every measurement against the bucket set, naming the file and line of the first one outside it.</summary>
    public static void EnsureInBuckets(CsvRows<MeasuredRequest> rows, BucketSet buckets)
    {
        // A group is one observation only when whole: the rows of an interrupted group would fit a wrong end time.
        if (MeasurementGroups.PartialRows(rows.Rows) is [var first, ..])
        {
            var m = rows.Rows[first];
            throw new CliException(
                $"{rows.Source}:{rows.Lines[first]}: column 'group': group {m.Group} has {MeasurementGroups.RowsOf(rows.Rows, m.Group!.Value)} rows " +
                $"but batch {m.Batch}; a group is used only whole (run lens profile again to re-measure an interrupted group, or remove its rows)");
        }

        for (var n = 0; n < rows.Rows.Count; n++)
        {
            var m = rows.Rows[n];
            if (buckets.CheckRequest(m.InputLength, m.OutputLength) is { } reason)
            {
                throw new CliException($"{rows.Source}:{rows.Lines[n]}: {reason}");
            }

            if (buckets.BatchIndex(m.Batch) is var at && (at < 0 || buckets.Batch[at] != m.Batch))
            {
                throw new CliException(
                    $"{rows.Source}:{rows.Lines[n]}: column 'batch': {m.Batch} is not one of the batch buckets {string.Join(',', buckets.Batch)} " +
                    "(give the deployment's --batch-buckets)");
            }

            if (m.Bucket is { } b && !buckets.Contains(b))
            {
                throw new CliException($"{rows.Source}:{rows.Lines[n]}: column 'bucket': {b} is not one of the buckets {buckets}");
            }
        }
    }
}
