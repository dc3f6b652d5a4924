using Lens.Core;

namespace Lens.WebConsole.Charts;

/// <summary>A point of a latency curve: the value at one input length.</summary>
public readonly record struct CurvePoint(double X, double Y);

/// <summary>A bucket edge drawn on a chart: <see cref="Kind"/> is <c>prefill</c> or <c>decode</c>.</summary>
public readonly record struct ChartEdge(int Edge, string Kind);

/// <summary>
/// Latency across input length from a fitted model (method.md, "The model"): TTFT(I) = A[pre(I)] and E2E(I, O) for one output
/// length. Both are step functions of I; they are evaluated at every length up to <see cref="MaxPoints"/> lengths, and beyond that
/// at evenly spaced lengths plus both sides of every prefill edge, so that a chart costs the same for any bucket set.
/// </summary>
public static class LatencyCurves
{
    public const int MaxPoints = 1024;

    public static CurvePoint[] Ttft(DeploymentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var max = Math.Min(model.Buckets.MaxPrompt, model.Buckets.MaxSequence - 1);
        return [.. Lengths(max, model.Buckets.Prefill).Select(i => new CurvePoint(i, model.Predict(i, 1).TtftMs))];
    }

    /// <summary>E2E for output length <paramref name="outputLength"/>; empty when no input length leaves room for it.</summary>
    public static CurvePoint[] E2e(DeploymentModel model, int outputLength)
    {
        ArgumentNullException.ThrowIfNull(model);
        var max = Math.Min(model.Buckets.MaxPrompt, model.Buckets.MaxSequence - outputLength);
        return outputLength < 1 || max < 1 ? [] : [.. Lengths(max, model.Buckets.Prefill).Select(i => new CurvePoint(i, model.Predict(i, outputLength).E2eMs))];
    }

    /// <summary>The edges inside 1..<paramref name="maxInput"/>: prefill edges, and the input lengths at which a request of
    /// <paramref name="outputLength"/> tokens first reaches each decode edge (when given).</summary>
    public static ChartEdge[] Edges(BucketSet buckets, int maxInput, int? outputLength = null)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        var edges = buckets.Prefill.Where(p => p <= maxInput).Select(p => new ChartEdge(p, "prefill")).ToList();
        if (outputLength is > 1 and var o)
        {
            // The last decode step runs at length StepLength(I, O - 1): from this I on, it lies beyond decode edge d.
            var shift = buckets.StepLength(0, o - 1);
            edges.AddRange(buckets.Decode.Select(d => d - shift + 1).Where(i => i >= 1 && i <= maxInput).Select(i => new ChartEdge(i, "decode")));
        }

        return [.. edges];
    }

    private static IEnumerable<int> Lengths(int max, IEnumerable<int> edges)
    {
        if (max <= MaxPoints)
        {
            return Enumerable.Range(1, Math.Max(max, 0));
        }

        var stride = (double)max / MaxPoints;
        var lengths = new SortedSet<int>(Enumerable.Range(0, MaxPoints + 1).Select(k => Math.Clamp((int)Math.Round(1 + k * stride), 1, max)));
        foreach (var e in edges)
        {
            if (e <= max)
            {
                lengths.Add(e);
            }

            if (e + 1 <= max)
            {
                lengths.Add(e + 1);
            }
        }

        return lengths;
    }
}
