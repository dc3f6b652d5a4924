using System.Globalization;

namespace Lens.WebConsole;

/// <summary>How the console prints numbers and times (invariant culture, UTC).</summary>
public static class Format
{
    public static string Ms(double? value) => value is { } v && double.IsFinite(v) ? v.ToString("0.###", CultureInfo.InvariantCulture) : "—";

    public static string Percent(double? fraction) =>
        fraction is { } f && double.IsFinite(f) ? (f * 100).ToString("0.##", CultureInfo.InvariantCulture) + "%" : "—";

    public static string Time(DateTimeOffset? time) =>
        time is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC" : "never";
}
