namespace Lens.Silo;

/// <summary>
/// Bounds of the OTLP trace intake (<c>POST /v1/traces</c>), section <c>Lens:Otlp</c>; checked at start with the other settings.
/// </summary>
public sealed class LensOtlpOptions
{
    public const int MaxBodyLimit = 64 << 20;
    public const int MaxDecompressedLimit = 256 << 20;
    public const int MaxSpansLimit = 100_000;

    /// <summary>Largest export body as sent (compressed or not), in bytes: 1 KiB..64 MiB; a longer one is answered 413.</summary>
    public int MaxBodyBytes { get; set; } = 4 << 20;

    /// <summary>
    /// Largest export body after gzip decompression, in bytes: at least <see cref="MaxBodyBytes"/>, at most 256 MiB. Decompression
    /// stops at this size and the export is answered 413, so a gzip bomb never takes more memory than this.
    /// </summary>
    public int MaxDecompressedBytes { get; set; } = 32 << 20;

    /// <summary>Most spans in one export (1..100,000); exporters batch 512 by default. More: 400, nothing of it used.</summary>
    public int MaxSpansPerRequest { get; set; } = 10_000;

    /// <summary>
    /// Port of the OTLP/gRPC intake (<c>TraceService/Export</c>, HTTP/2 cleartext, on <c>Lens:HttpAddress</c>); 0: off (the default).
    /// OpenTelemetry's conventional port is 4317.
    /// </summary>
    public int GrpcPort { get; set; }

    internal void Check(List<string> errors)
    {
        if (GrpcPort is < 0 or > 65535)
        {
            errors.Add($"Lens:Otlp:GrpcPort is {GrpcPort}; use 1..65535, or 0 for no OTLP/gRPC intake");
        }

        if (MaxBodyBytes is < 1024 or > MaxBodyLimit)
        {
            errors.Add($"Lens:Otlp:MaxBodyBytes is {MaxBodyBytes}; use 1024..{MaxBodyLimit}");
        }

        if (MaxDecompressedBytes < MaxBodyBytes || MaxDecompressedBytes > MaxDecompressedLimit)
        {
            errors.Add($"Lens:Otlp:MaxDecompressedBytes is {MaxDecompressedBytes}; use Lens:Otlp:MaxBodyBytes ({MaxBodyBytes})..{MaxDecompressedLimit}");
        }

        if (MaxSpansPerRequest is < 1 or > MaxSpansLimit)
        {
            errors.Add($"Lens:Otlp:MaxSpansPerRequest is {MaxSpansPerRequest}; use 1..{MaxSpansLimit}");
        }
    }
}
