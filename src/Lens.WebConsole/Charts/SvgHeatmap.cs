using System.Globalization;
using System.Net;
using System.Text;

namespace Lens.WebConsole.Charts;

/// <summary>
/// One cell of a <see cref="SvgHeatmap"/>: its value (null: not observed in that column, drawn empty), whether it is marked (drawn
/// with class <c>marked</c>, outlined) and its title.
/// </summary>
public readonly record struct HeatCell(double? Value, bool Marked, string? Title);

/// <summary>
/// A hand-built SVG heatmap, rendered on the server like <see cref="SvgChart"/>: rows (e.g. cost cells) by columns (e.g. windows of
/// traffic), each value coloured on a diverging scale clamped at <c>±scale</c> (blue below zero, red above); every rectangle carries
/// <c>data-row</c>, <c>data-column</c> and <c>data-value</c> so that tests and scripts can read what is drawn.
/// </summary>
public static class SvgHeatmap
{
    private const double Width = 720, Left = 110, Right = 16, Top = 28, RowHeight = 16, Bottom = 40;

    public static string Draw(string id, string title, IReadOnlyList<string> rows, IReadOnlyList<string> columns, HeatCell[][] cells,
        double scale, string unit)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(cells);
        if (cells.Length != rows.Count || cells.Any(r => r.Length != columns.Count))
        {
            throw new ArgumentException("the cells must be rows x columns");
        }

        scale = scale > 0 && double.IsFinite(scale) ? scale : 1;
        var height = Top + (RowHeight * Math.Max(rows.Count, 1)) + Bottom;
        var cellWidth = (Width - Left - Right) / Math.Max(columns.Count, 1);
        var svg = new StringBuilder().Append(Invariant(
            $"<svg id=\"{Escape(id)}\" class=\"chart heatmap\" viewBox=\"0 0 {Width} {height}\" role=\"img\" aria-labelledby=\"{Escape(id)}-title\" xmlns=\"http://www.w3.org/2000/svg\" data-rows=\"{rows.Count}\" data-columns=\"{columns.Count}\"><title id=\"{Escape(id)}-title\">{Escape(title)}</title>"));
        for (var r = 0; r < rows.Count; r++)
        {
            var y = Top + (r * RowHeight);
            svg.Append(Invariant($"<text class=\"tick\" x=\"{Left - 6}\" y=\"{y + (RowHeight * 0.75):0.##}\" text-anchor=\"end\">{Escape(rows[r])}</text>"));
            for (var c = 0; c < columns.Count; c++)
            {
                var cell = cells[r][c];
                var x = Left + (c * cellWidth);
                var fill = cell.Value is { } v && double.IsFinite(v) ? Colour(v / scale) : "#f3f4f6";
                var value = cell.Value is { } w && double.IsFinite(w) ? w.ToString("0.####", CultureInfo.InvariantCulture) : "";
                svg.Append(Invariant(
                    $"<rect class=\"heat{(cell.Marked ? " marked" : "")}\" data-row=\"{Escape(rows[r])}\" data-column=\"{Escape(columns[c])}\" data-value=\"{value}\" x=\"{x:0.##}\" y=\"{y:0.##}\" width=\"{Math.Max(cellWidth - 1, 0.5):0.##}\" height=\"{RowHeight - 1}\" fill=\"{fill}\"{(cell.Marked ? " stroke=\"#111827\" stroke-width=\"1.5\"" : " stroke=\"#d1d5db\" stroke-width=\"0.5\"")}><title>{Escape(cell.Title ?? $"{rows[r]}, {columns[c]}: not observed")}</title></rect>"));
            }
        }

        var bottom = Top + (RowHeight * rows.Count);
        var every = Math.Max(1, (int)Math.Ceiling(columns.Count / 12.0));
        for (var c = 0; c < columns.Count; c += every)
        {
            svg.Append(Invariant($"<text class=\"tick\" x=\"{Left + ((c + 0.5) * cellWidth):0.##}\" y=\"{bottom + 14}\" text-anchor=\"middle\">{Escape(columns[c])}</text>"));
        }

        svg.Append(Invariant(
            $"<text class=\"legend\" x=\"{Left}\" y=\"16\">blue −{scale:0.##}{Escape(unit)} · white 0 · red +{scale:0.##}{Escape(unit)} or more; outlined: flagged</text>"));
        return svg.Append("</svg>").ToString();
    }

    /// <summary>White at 0, towards red for positive and blue for negative, full at ±1.</summary>
    private static string Colour(double t)
    {
        t = Math.Clamp(t, -1, 1);
        var k = (int)Math.Round(255 * (1 - Math.Abs(t)));
        return t >= 0 ? $"#ff{k:x2}{k:x2}" : $"#{k:x2}{k:x2}ff";
    }

    private static string Escape(string text) => WebUtility.HtmlEncode(text);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
