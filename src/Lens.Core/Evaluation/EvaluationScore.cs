namespace Lens.Core;

/// <summary>A row of an evaluation run with what it measured.</summary>
public readonly record struct MeasuredRow(EvaluationRow Row, double E2eMs, double? TtftMs)
{
    public MeasuredRequest ToMeasurement() => new(Row.InputLength, Row.OutputLength, E2eMs, TtftMs, Row.Bucket);
}

/// <summary>The outcome of an evaluation run.</summary>
/// <param name="Model">LENS's model, fitted on the profiling rows alone.</param>
/// <param name="Evaluations">LENS and the baselines (fitted on the same profiling rows), scored on the held-out rows.</param>
/// <param name="NoiseFloor">The held-out twins scored against the held-out rows: the error of measuring twice.</param>
/// <param name="Sweep">The sweep's measurements, for the plot.</param>
/// <param name="HeldOutCoverage">LENS's intervals on every single held-out measurement.</param>
/// <param name="TwinCoverage">LENS's intervals on every single twin measurement.</param>
public sealed record EvaluationScore(DeploymentModel Model, IReadOnlyList<Evaluation> Evaluations, Evaluation NoiseFloor, IReadOnlyList<MeasuredRequest> Sweep,
    IntervalCoverage HeldOutCoverage, IntervalCoverage TwinCoverage)
{
    /// <summary>
    /// Fits and scores an evaluation run. Every point is reduced by <paramref name="statistic"/>: the profile's, the held-out's and
    /// the twins' alike, as method.md asks.
    /// </summary>
    public static EvaluationScore Compute(BucketSet buckets, IReadOnlyCollection<MeasuredRow> rows, RepeatStatistic statistic)
    {
        ArgumentNullException.ThrowIfNull(rows);
        List<MeasuredRequest> Of(EvaluationRole role) => [.. rows.Where(r => r.Row.Role == role).Select(r => r.ToMeasurement())];
        var profile = Of(EvaluationRole.Profile);
        var heldOut = Of(EvaluationRole.HeldOut);
        var twins = Of(EvaluationRole.HeldOutTwin);
        var model = BucketFitter.Fit(buckets, profile, statistic);
        ILatencyPredictor[] predictors = [new LensPredictor(model), Baselines.SmoothRegression(profile, statistic), Baselines.PerTokenLinear(profile, statistic)];
        var evaluations = predictors.Select(p => Metrics.Evaluate(p, heldOut, statistic)).ToArray();
        var noise = Metrics.Evaluate(new TwinPredictor(twins, statistic), heldOut, statistic);
        return new EvaluationScore(model, evaluations, noise, Of(EvaluationRole.Sweep), IntervalCoverage.Of(model, heldOut),
            IntervalCoverage.Of(model, twins));
    }

    /// <summary>"Predicts" a held-out request by its twin's measurement: the error it scores is the noise floor.</summary>
    private sealed class TwinPredictor(IEnumerable<MeasuredRequest> twins, RepeatStatistic statistic) : ILatencyPredictor
    {
        private readonly Dictionary<(int, int), (double E2e, double Ttft)> _byPair = twins.GroupBy(t => (t.InputLength, t.OutputLength))
            .ToDictionary(g => g.Key, g =>
            {
                var ttfts = g.Where(t => t.TtftMs is not null).Select(t => t.TtftMs!.Value).ToArray();
                var e2e = statistic.Reduce(g.Select(t => t.E2eMs).ToArray());
                return (e2e, ttfts.Length > 0 ? statistic.Reduce(ttfts) : g.Key.OutputLength == 1 ? e2e : double.NaN);
            });

        public string Name => "noise floor (second measurement)";

        public (double E2eMs, double TtftMs) PredictLatency(int inputLength, int outputLength) =>
            _byPair.TryGetValue((inputLength, outputLength), out var v) ? v : (double.NaN, double.NaN);
    }
}
