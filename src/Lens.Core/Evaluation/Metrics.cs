namespace Lens.Core;

/// <summary>Summary of absolute percentage errors <c>|pred - measured| / measured</c>, in percent.</summary>
public readonly record struct ErrorSummary(int Count, double Mean, double Median, double P90, double Max)
{
    public static readonly ErrorSummary Empty = new(0, double.NaN, double.NaN, double.NaN, double.NaN);

    public static ErrorSummary Of(IEnumerable<double> percentErrors)
    {
        var sorted = percentErrors.Order().ToArray();
        return sorted.Length == 0
            ? Empty
            : new ErrorSummary(sorted.Length, sorted.Average(), RepeatStatistic.QuantileOfSorted(sorted, 0.5),
                RepeatStatistic.QuantileOfSorted(sorted, 0.9), sorted[^1]);
    }
}

/// <summary>One held-out request: measured and predicted latencies (ms) and the absolute percentage errors (NaN where not measured).</summary>
public readonly record struct RequestError(
    int InputLength, int OutputLength, double MeasuredE2eMs, double PredictedE2eMs, double E2eApe, double TtftApe, double TpotApe);

/// <summary>Errors of one predictor on held-out requests: E2E, TTFT and TPOT separately (method.md, "Metrics").</summary>
public sealed record Evaluation(string Predictor, ErrorSummary E2e, ErrorSummary Ttft, ErrorSummary Tpot, IReadOnlyList<RequestError> Requests);

public static class Metrics
{
    /// <summary>Absolute percentage error in percent.</summary>
    public static double Ape(double predicted, double measured) => Math.Abs(predicted - measured) / measured * 100;

    /// <summary>
    /// Evaluates <paramref name="predictor"/> on held-out measurements. Repeats of one (I, O) are reduced with
    /// <paramref name="statistic"/> (the profile's own). Measured TTFT is the streamed TTFT where present, else the E2E of an
    /// <c>O = 1</c> request; measured TPOT is <c>(E2E - TTFT) / (O - 1)</c> where TTFT was measured.
    /// </summary>
    public static Evaluation Evaluate(ILatencyPredictor predictor, IEnumerable<MeasuredRequest> heldOut, RepeatStatistic statistic)
    {
        ArgumentNullException.ThrowIfNull(predictor);
        var requests = new List<RequestError>();
        foreach (var g in heldOut.GroupBy(m => (m.InputLength, m.OutputLength)).OrderBy(g => g.Key))
        {
            var (i, o) = g.Key;
            var e2e = statistic.Reduce(g.Select(m => m.E2eMs).ToArray());
            var ttfts = g.Where(m => m.TtftMs is not null).Select(m => m.TtftMs!.Value).ToArray();
            double? ttft = ttfts.Length > 0 ? statistic.Reduce(ttfts) : o == 1 ? e2e : null;
            var (pe2e, pttft) = predictor.PredictLatency(i, o);
            var tpotApe = double.NaN;
            if (o > 1 && ttfts.Length > 0)
            {
                tpotApe = Ape((pe2e - pttft) / (o - 1), (e2e - ttft!.Value) / (o - 1));
            }

            requests.Add(new RequestError(i, o, e2e, pe2e, Ape(pe2e, e2e), ttft is { } t ? Ape(pttft, t) : double.NaN, tpotApe));
        }

        return new Evaluation(predictor.Name,
            ErrorSummary.Of(requests.Select(r => r.E2eApe)),
            ErrorSummary.Of(requests.Where(r => !double.IsNaN(r.TtftApe)).Select(r => r.TtftApe)),
            ErrorSummary.Of(requests.Where(r => !double.IsNaN(r.TpotApe)).Select(r => r.TpotApe)),
            requests);
    }
}
