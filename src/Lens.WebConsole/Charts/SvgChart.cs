using System.Globalization;
using System.Net;
using System.Text;

namespace Lens.WebConsole.Charts;

/// <summary>A series of bars of a grouped bar chart: one value per group.</summary>
public sealed record BarSeries(string Name, double[] Values);

/// <summary>A labelled point of a scatter chart; <see cref="Kind"/> names its class (<c>point-{Kind}</c>) and its legend entry.</summary>
public readonly record struct ChartPoint(double X, double Y, string Label, string Kind);

/// <summary>
/// One line of a <see cref="SvgChart.Timeline"/>: a value per time (null: no value, the line breaks), drawn with class
/// <c>line line-{Kind}</c>; a point whose <see cref="Marks"/> entry is set is drawn as a circle of class <c>point-{mark}</c>, titled
/// by its <see cref="Titles"/> entry.
/// </summary>
public sealed record TimeSeries(string Name, string Kind, double?[] Values, string?[]? Marks = null, string?[]? Titles = null);

/// <summary>
/// Hand-built SVG charts, rendered on the server (nothing loads from elsewhere, no script): a step curve with bucket edges and
/// measured points, grouped bars, and labelled points. Every edge carries <c>data-edge</c> and <c>data-kind</c>, every measured point <c>data-x</c>
/// and <c>data-y</c>, so that tests (and users' scripts) can read what is drawn.
/// </summary>
public static class SvgChart
{
    private const double Width = 720, Height = 300, Left = 64, Right = 16, Top = 28, Bottom = 44;
    private const int MaxDots = 60; // a timeline dots every point up to this many analyses (each titled with its figures)
    private static readonly string[] Palette = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"];

    public static string StepCurve(string id, string title, string xLabel, string yLabel, IReadOnlyList<CurvePoint> curve,
        IReadOnlyList<CurvePoint> measured, IReadOnlyList<ChartEdge> edges)
    {
        ArgumentNullException.ThrowIfNull(curve);
        ArgumentNullException.ThrowIfNull(measured);
        ArgumentNullException.ThrowIfNull(edges);
        var all = curve.Concat(measured).ToArray();
        var xMax = all.Length == 0 ? 1 : Math.Max(1, all.Max(p => p.X));
        var yMax = all.Length == 0 ? 1 : NiceCeiling(all.Max(p => p.Y));
        var svg = Open(id, title);
        Axes(svg, xMax, yMax, xLabel, yLabel);
        foreach (var edge in edges)
        {
            var x = X(edge.Edge, xMax);
            svg.Append(Invariant($"<line class=\"edge edge-{edge.Kind}\" data-edge=\"{edge.Edge}\" data-kind=\"{edge.Kind}\" x1=\"{x:0.#}\" y1=\"{Top}\" x2=\"{x:0.#}\" y2=\"{Height - Bottom}\"><title>{edge.Kind} edge {edge.Edge}</title></line>"));
        }

        if (curve.Count > 0)
        {
            // Each value holds until the next length: horizontal, then vertical (a step function).
            var path = new StringBuilder(Invariant($"M{X(curve[0].X, xMax):0.##},{Y(curve[0].Y, yMax):0.##}"));
            for (var n = 1; n < curve.Count; n++)
            {
                path.Append(Invariant($"H{X(curve[n].X, xMax):0.##}V{Y(curve[n].Y, yMax):0.##}"));
            }

            svg.Append($"<path class=\"curve\" d=\"{path}\" />");
        }

        foreach (var p in measured)
        {
            svg.Append(Invariant($"<circle class=\"measured\" data-x=\"{p.X}\" data-y=\"{p.Y:0.###}\" cx=\"{X(p.X, xMax):0.##}\" cy=\"{Y(p.Y, yMax):0.##}\" r=\"3.5\"><title>I = {p.X}: {p.Y:0.##} ms measured</title></circle>"));
        }

        Legend(svg, [("predicted", "curve"), ("measured", "measured"), ("prefill edge", "edge-prefill"), ("decode edge", "edge-decode")]);
        return svg.Append("</svg>").ToString();
    }

    public static string Bars(string id, string title, string yLabel, IReadOnlyList<string> groups, IReadOnlyList<BarSeries> series)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(series);
        var finite = series.SelectMany(s => s.Values).Where(double.IsFinite).ToArray();
        var yMax = finite.Length == 0 ? 1 : NiceCeiling(finite.Max());
        var svg = Open(id, title);
        Axes(svg, xMax: null, yMax, xLabel: null, yLabel);
        var plotWidth = Width - Left - Right;
        var groupWidth = plotWidth / Math.Max(groups.Count, 1);
        var barWidth = groupWidth * 0.8 / Math.Max(series.Count, 1);
        for (var g = 0; g < groups.Count; g++)
        {
            var x0 = Left + g * groupWidth + groupWidth * 0.1;
            for (var s = 0; s < series.Count; s++)
            {
                var value = g < series[s].Values.Length ? series[s].Values[g] : double.NaN;
                if (!double.IsFinite(value))
                {
                    continue;
                }

                var y = Y(value, yMax);
                svg.Append(Invariant($"<rect class=\"bar\" data-group=\"{Escape(groups[g])}\" data-series=\"{Escape(series[s].Name)}\" data-value=\"{value:0.###}\" x=\"{x0 + s * barWidth:0.##}\" y=\"{y:0.##}\" width=\"{barWidth * 0.92:0.##}\" height=\"{Height - Bottom - y:0.##}\" fill=\"{Palette[s % Palette.Length]}\"><title>{Escape(groups[g])}, {Escape(series[s].Name)}: {value:0.##}</title></rect>"));
            }

            svg.Append(Invariant($"<text class=\"tick\" x=\"{x0 + groupWidth * 0.4:0.##}\" y=\"{Height - Bottom + 16}\" text-anchor=\"middle\">{Escape(Shorten(groups[g]))}</text>"));
        }

        var legend = 0;
        foreach (var s in series)
        {
            var x = Left + legend * 130;
            svg.Append(Invariant($"<rect x=\"{x}\" y=\"8\" width=\"10\" height=\"10\" fill=\"{Palette[legend % Palette.Length]}\" /><text class=\"legend\" x=\"{x + 14}\" y=\"17\">{Escape(s.Name)}</text>"));
            legend++;
        }

        return svg.Append("</svg>").ToString();
    }

    /// <summary>
    /// Labelled points on axes from 0, each a circle with <c>data-name</c>, <c>data-x</c> and <c>data-y</c>; the points of kind
    /// <paramref name="joined"/> are joined in order of x. The legend lists the kinds of <paramref name="legend"/> that are drawn.
    /// </summary>
    public static string Scatter(string id, string title, string xLabel, string yLabel, IReadOnlyList<ChartPoint> points,
        IReadOnlyList<(string Name, string Kind)> legend, string? joined = null)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(legend);
        var drawn = points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToArray();
        var xMax = drawn.Length == 0 ? 1 : NiceCeiling(drawn.Max(p => p.X));
        var yMax = drawn.Length == 0 ? 1 : NiceCeiling(drawn.Max(p => p.Y));
        var svg = Open(id, title);
        Axes(svg, xMax, yMax, xLabel, yLabel);
        var line = drawn.Where(p => p.Kind == joined).OrderBy(p => p.X).ToArray();
        if (line.Length > 1)
        {
            svg.Append($"<polyline class=\"join join-{Escape(joined!)}\" points=\"{string.Join(' ', line.Select(p => Invariant($"{X(p.X, xMax):0.##},{Y(p.Y, yMax):0.##}")))}\" />");
        }

        foreach (var p in drawn)
        {
            svg.Append(Invariant($"<circle class=\"point point-{Escape(p.Kind)}\" data-name=\"{Escape(p.Label)}\" data-x=\"{p.X:0.###}\" data-y=\"{p.Y:0.###}\" cx=\"{X(p.X, xMax):0.##}\" cy=\"{Y(p.Y, yMax):0.##}\" r=\"{(p.Kind == "recommended" ? 8 : 5)}\"><title>{Escape(p.Label)}: {p.X:0.##}, {p.Y:0.##}</title></circle>"));
        }

        Legend(svg, [.. legend.Where(l => drawn.Any(p => p.Kind == l.Kind)).Select(l => (l.Name, "point-" + l.Kind))]);
        return svg.Append("</svg>").ToString();
    }

    /// <summary>
    /// Lines over time, spaced evenly by entry (one per analysis), on a y axis that spans negative values too (with a zero line);
    /// an optional band (<paramref name="bandLow"/> to <paramref name="bandHigh"/> per time) shaded behind them. Every line carries
    /// <c>data-series</c> and <c>data-points</c>, every marked point <c>data-series</c>, <c>data-index</c> and <c>data-y</c>.
    /// </summary>
    public static string Timeline(string id, string title, string yLabel, IReadOnlyList<DateTimeOffset> times, IReadOnlyList<TimeSeries> series,
        IReadOnlyList<double>? bandLow = null, IReadOnlyList<double>? bandHigh = null, string bandName = "band")
    {
        ArgumentNullException.ThrowIfNull(times);
        ArgumentNullException.ThrowIfNull(series);
        var hasBand = bandLow is not null && bandHigh is not null && bandLow.Count == times.Count && bandHigh.Count == times.Count;
        var values = series.SelectMany(s => s.Values).Where(v => v is { } x && double.IsFinite(x)).Select(v => v!.Value)
            .Concat(hasBand ? bandLow!.Concat(bandHigh!).Where(double.IsFinite) : []).Append(0).ToArray();
        var yMin = values.Min() < 0 ? -NiceCeiling(-values.Min()) : 0;
        var yMax = values.Max() > 0 ? NiceCeiling(values.Max()) : yMin < 0 ? 0 : 1;
        var n = times.Count;
        double Tx(int i) => n <= 1 ? (Left + Width - Right) / 2 : Left + (double)i / (n - 1) * (Width - Left - Right);
        double Ty(double v) => Height - Bottom - (Math.Clamp(v, yMin, yMax) - yMin) / (yMax - yMin) * (Height - Top - Bottom);

        var svg = Open(id, title);
        svg.Append(Invariant($"<line class=\"axis\" x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{Width - Right}\" y2=\"{Height - Bottom}\" />"));
        svg.Append(Invariant($"<line class=\"axis\" x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Height - Bottom}\" />"));
        for (var k = 0; k <= 4; k++)
        {
            var v = yMin + (yMax - yMin) * k / 4;
            svg.Append(Invariant($"<line class=\"grid\" x1=\"{Left}\" y1=\"{Ty(v):0.##}\" x2=\"{Width - Right}\" y2=\"{Ty(v):0.##}\" /><text class=\"tick\" x=\"{Left - 6}\" y=\"{Ty(v) + 4:0.##}\" text-anchor=\"end\">{v:0.##}</text>"));
        }

        if (yMin < 0)
        {
            svg.Append(Invariant($"<line class=\"zero\" x1=\"{Left}\" y1=\"{Ty(0):0.##}\" x2=\"{Width - Right}\" y2=\"{Ty(0):0.##}\" />"));
        }

        // At most five time labels, always the first and the last.
        var labelled = n == 0 ? [] : Enumerable.Range(0, Math.Min(n, 5)).Select(k => n <= 5 ? k : (int)Math.Round(k * (n - 1) / 4.0)).Distinct();
        foreach (var i in labelled)
        {
            svg.Append(Invariant($"<text class=\"tick\" x=\"{Tx(i):0.##}\" y=\"{Height - Bottom + 16}\" text-anchor=\"middle\">{times[i].UtcDateTime:HH:mm}</text>"));
        }

        svg.Append(Invariant($"<text class=\"label\" x=\"{(Left + Width - Right) / 2}\" y=\"{Height - 6}\" text-anchor=\"middle\">analysis time (UTC)</text>"));
        svg.Append(Invariant($"<text class=\"label\" transform=\"rotate(-90)\" x=\"{-(Top + Height - Bottom) / 2}\" y=\"14\" text-anchor=\"middle\">{Escape(yLabel)}</text>"));

        if (hasBand && n > 0)
        {
            var upper = Enumerable.Range(0, n).Select(i => Invariant($"{Tx(i):0.##},{Ty(bandHigh![i]):0.##}"));
            var lower = Enumerable.Range(0, n).Reverse().Select(i => Invariant($"{Tx(i):0.##},{Ty(bandLow![i]):0.##}"));
            var points = n == 1 // one analysis: a short bar, so the band still shows
                ? Invariant($"{Tx(0) - 6:0.##},{Ty(bandHigh![0]):0.##} {Tx(0) + 6:0.##},{Ty(bandHigh![0]):0.##} {Tx(0) + 6:0.##},{Ty(bandLow![0]):0.##} {Tx(0) - 6:0.##},{Ty(bandLow![0]):0.##}")
                : string.Join(' ', upper.Concat(lower));
            svg.Append($"<polygon class=\"band\" points=\"{points}\"><title>{Escape(bandName)}</title></polygon>");
        }

        var colour = 0;
        foreach (var line in series)
        {
            var fill = line.Kind == "common" ? "#111827" : Palette[colour++ % Palette.Length];
            var stroke = line.Kind == "common" ? "" : $" stroke=\"{fill}\"";
            var path = new StringBuilder();
            var pen = false;
            for (var i = 0; i < n && i < line.Values.Length; i++)
            {
                if (line.Values[i] is { } v && double.IsFinite(v))
                {
                    path.Append(Invariant($"{(pen ? 'L' : 'M')}{Tx(i):0.##},{Ty(v):0.##}"));
                    pen = true;
                }
                else
                {
                    pen = false;
                }
            }

            var count = line.Values.Take(n).Count(v => v is { } x && double.IsFinite(x));
            if (count == 1)
            {
                path.Append("h0.01"); // a lone point still draws (round caps)
            }

            svg.Append(Invariant($"<path class=\"line line-{Escape(line.Kind)}\" data-series=\"{Escape(line.Name)}\" data-points=\"{count}\" d=\"{path}\"{stroke}><title>{Escape(line.Name)}</title></path>"));
            for (var i = 0; i < n && i < line.Values.Length && n <= MaxDots; i++)
            {
                if (line.Values[i] is { } v && double.IsFinite(v) && line.Marks?.ElementAtOrDefault(i) is null)
                {
                    var tip = line.Titles?.ElementAtOrDefault(i) ?? $"{line.Name} at {times[i].UtcDateTime:HH:mm:ss}: {v:0.##}";
                    svg.Append(Invariant($"<circle class=\"dot\" data-series=\"{Escape(line.Name)}\" cx=\"{Tx(i):0.##}\" cy=\"{Ty(v):0.##}\" r=\"2.5\" fill=\"{fill}\"><title>{Escape(tip)}</title></circle>"));
                }
            }

            for (var i = 0; i < n && i < line.Values.Length; i++)
            {
                if (line.Marks?.ElementAtOrDefault(i) is { } mark && line.Values[i] is { } v && double.IsFinite(v))
                {
                    var tip = line.Titles?.ElementAtOrDefault(i) ?? $"{line.Name}: {v:0.##}";
                    svg.Append(Invariant($"<circle class=\"point point-{Escape(mark)}\" data-series=\"{Escape(line.Name)}\" data-index=\"{i}\" data-y=\"{v:0.###}\" cx=\"{Tx(i):0.##}\" cy=\"{Ty(v):0.##}\" r=\"4.5\"><title>{Escape(tip)}</title></circle>"));
                }
            }
        }

        var legend = new List<(string, string)>();
        if (series.Any(s => s.Kind == "common"))
        {
            legend.Add(("common shift", "line-common"));
        }

        if (hasBand)
        {
            legend.Add((bandName, "band"));
        }

        legend.AddRange(series.SelectMany(s => s.Marks ?? []).OfType<string>().Distinct().Order(StringComparer.Ordinal).Select(m => (m, "point-" + m)));
        Legend(svg, [.. legend]);

        // The lines' own names on a second legend row when they fit (otherwise each line's title names it).
        var named = series.Where(s => s.Kind != "common").ToArray();
        if (named.Length is > 0 and <= 8)
        {
            var x = Left;
            foreach (var (line, k) in named.Select((l, k) => (l, k)))
            {
                svg.Append(Invariant($"<rect class=\"key\" x=\"{x}\" y=\"{Top - 6}\" width=\"12\" height=\"3\" fill=\"{Palette[k % Palette.Length]}\" /><text class=\"legend\" x=\"{x + 16}\" y=\"{Top - 2}\">{Escape(line.Name)}</text>"));
                x += Math.Max(80, 24 + (6 * line.Name.Length));
            }
        }

        return svg.Append("</svg>").ToString();
    }

    /// <summary>A round number at or above <paramref name="value"/> (1, 2, 2.5 or 5 times a power of ten).</summary>
    public static double NiceCeiling(double value)
    {
        if (!(value > 0) || !double.IsFinite(value))
        {
            return 1;
        }

        var power = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (var step in new[] { 1, 2, 2.5, 5, 10 })
        {
            if (step * power >= value)
            {
                return step * power;
            }
        }

        return 10 * power;
    }

    private static StringBuilder Open(string id, string title) =>
        new StringBuilder().Append(Invariant(
            $"<svg id=\"{Escape(id)}\" class=\"chart\" viewBox=\"0 0 {Width} {Height}\" role=\"img\" aria-labelledby=\"{Escape(id)}-title\" xmlns=\"http://www.w3.org/2000/svg\"><title id=\"{Escape(id)}-title\">{Escape(title)}</title>"));

    private static void Axes(StringBuilder svg, double? xMax, double yMax, string? xLabel, string yLabel)
    {
        svg.Append(Invariant($"<line class=\"axis\" x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{Width - Right}\" y2=\"{Height - Bottom}\" />"));
        svg.Append(Invariant($"<line class=\"axis\" x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Height - Bottom}\" />"));
        for (var k = 0; k <= 4; k++)
        {
            var v = yMax * k / 4;
            var y = Y(v, yMax);
            svg.Append(Invariant($"<line class=\"grid\" x1=\"{Left}\" y1=\"{y:0.##}\" x2=\"{Width - Right}\" y2=\"{y:0.##}\" /><text class=\"tick\" x=\"{Left - 6}\" y=\"{y + 4:0.##}\" text-anchor=\"end\">{v:0.##}</text>"));
            if (xMax is { } max)
            {
                var xv = Math.Round(max * k / 4);
                svg.Append(Invariant($"<text class=\"tick\" x=\"{X(xv, max):0.##}\" y=\"{Height - Bottom + 16}\" text-anchor=\"middle\">{xv:0}</text>"));
            }
        }

        if (xLabel is not null)
        {
            svg.Append(Invariant($"<text class=\"label\" x=\"{(Left + Width - Right) / 2}\" y=\"{Height - 6}\" text-anchor=\"middle\">{Escape(xLabel)}</text>"));
        }

        svg.Append(Invariant($"<text class=\"label\" transform=\"rotate(-90)\" x=\"{-(Top + Height - Bottom) / 2}\" y=\"14\" text-anchor=\"middle\">{Escape(yLabel)}</text>"));
    }

    private static void Legend(StringBuilder svg, (string Name, string Class)[] items)
    {
        var x = Left;
        foreach (var (name, css) in items)
        {
            svg.Append(Invariant($"<rect class=\"key {css}\" x=\"{x}\" y=\"8\" width=\"12\" height=\"8\" /><text class=\"legend\" x=\"{x + 16}\" y=\"16\">{Escape(name)}</text>"));
            x += Math.Max(110, 24 + (7 * name.Length));
        }
    }

    private static double X(double value, double max) => Left + value / max * (Width - Left - Right);

    private static double Y(double value, double max) => Height - Bottom - Math.Max(value, 0) / max * (Height - Top - Bottom);

    private static string Escape(string text) => WebUtility.HtmlEncode(text);

    private static string Shorten(string text) => text.Length <= 28 ? text : text[..27] + "…";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
