using MathNet.Numerics.LinearAlgebra;

namespace Lens.Core;

/// <summary>Settings of <see cref="TrafficAnalysis"/>.</summary>
/// <param name="MinObservations">Requests whose latency a cell must be part of before the cell can be judged.</param>
/// <param name="Z">How many standard errors a cell's own shift must clear.</param>
/// <param name="MinRelativeShift">Smallest relative change of a cell that counts (live traffic is noisier than a profile).</param>
/// <param name="MinEstimateSteps">Steps a cell must have run in the window before its cost is re-estimated from the traffic.</param>
/// <param name="MaxEstimateError">Largest relative standard error of a shift whose re-estimated cost is offered.</param>
/// <param name="Iterations">Most Gauss-Newton rounds: each replays the window with the costs found so far (the schedule depends on them).</param>
/// <param name="MaxNumSeqs">Sequences in flight per replica on the server (null: the largest batch bucket).</param>
/// <param name="Replicas">Replicas behind the server's queue.</param>
public sealed record TrafficOptions(int MinObservations = 20, double Z = 4, double MinRelativeShift = 0.10, long MinEstimateSteps = 200,
    double MaxEstimateError = 0.05, int Iterations = 16, int? MaxNumSeqs = null, int Replicas = 1);

/// <summary>How one cost cell fares against a window of live traffic.</summary>
/// <param name="Cell">The prefill bucket, or decode bucket with its batch bucket.</param>
/// <param name="Observations">Requests whose latency the cell is part of (in the replay).</param>
/// <param name="Steps">Steps of the cell the replay ran (a prefill counts one).</param>
/// <param name="Shift">Relative change of the cell's cost that best explains the window (0.3 = 30% slower than its profile).</param>
/// <param name="ShiftStandardError">Standard error of <see cref="Shift"/>.</param>
/// <param name="Band">The cell's band: own shifts (beyond the common shift) inside it are noise.</param>
/// <param name="OutOfBand">Whether the cell's own shift left its band in this window (flagged after consecutive windows).</param>
/// <param name="ProfiledMs">The cell's cost in the model.</param>
/// <param name="EstimatedMs">
/// Its cost estimated from the traffic, on the machine as profiled (<c>cost * (1 + shift) / (1 + common shift)</c>), when it ran enough
/// steps and the estimate is tight; else null.
/// </param>
public sealed record CellHealth(BucketId Cell, int Observations, long Steps, double Shift, double ShiftStandardError, double Band, bool OutOfBand,
    double ProfiledMs, double? EstimatedMs)
{
    /// <summary>Whether enough requests include the cell for it to be judged (<see cref="TrafficOptions.MinObservations"/>).</summary>
    public bool Judged { get; init; }
}

/// <summary>One window of live traffic analysed.</summary>
/// <param name="Requests">Requests replayed.</param>
/// <param name="Skipped">Observed requests the deployment's buckets cannot serve (left out of the replay).</param>
/// <param name="TtftMape">Mean absolute percentage error of the profile's TTFT predictions for the window (percent).</param>
/// <param name="E2eMape">The same for E2E.</param>
/// <param name="CommonShift">The shift the judged cells share (median): the machine as a whole, not one bucket.</param>
/// <param name="Cells">Every cell the window reached.</param>
/// <param name="StartMs">Earliest arrival of the window.</param>
/// <param name="EndMs">Latest arrival of the window.</param>
public sealed record TrafficReport(int Requests, int Skipped, double TtftMape, double E2eMape, double CommonShift, IReadOnlyList<CellHealth> Cells,
    double StartMs, double EndMs)
{
    public IEnumerable<CellHealth> OutOfBand => Cells.Where(c => c.OutOfBand);
}

/// <summary>
/// Monitoring under continuous batching (method.md, "Live traffic"): a window of observed requests is replayed through the serving
/// simulation of the deployment (its batch buckets, <c>max_num_seqs</c> and replicas) at the observed arrivals, and each request's
/// observed TTFT and E2E are compared with the replay's. The same replay gives each request's exposure (<see cref="ExposureRecorder"/>):
/// how much of each cell's cost its latency is made of. Each request gives two rows, its TTFT and its decode part (E2E less TTFT,
/// exposure likewise): an E2E row would carry the request's TTFT again, queueing noise and all, and drown the decode cells' evidence
/// in it. The residuals, relative to the prediction, are regressed on the exposures
/// (least squares, with a ridge that pulls thinly observed cells toward the common shift), which attributes a slowdown to the cells
/// that caused it. The schedule itself depends on the costs (a slow cell queues everyone behind it), so the window is replayed again
/// with the costs found, and solved again (Gauss-Newton; <see cref="TrafficOptions.Iterations"/> rounds).
/// <para>
/// A cell is out of band when at least <see cref="TrafficOptions.MinObservations"/> requests include it and its own shift beyond the
/// common shift <c>c</c> (the median over judged cells) clears both <c>band = max(MinRelativeShift, Z * relative standard error of its
/// profile)</c> and <c>Z * se(shift)</c>. A shift all cells share is the machine, reported as <see cref="TrafficReport.CommonShift"/>
/// and blamed on no cell. With batch bucket 1 and one replica and no queueing, a request's exposure is its own breakdown, and this is
/// the single-request drift analysis.
/// </para>
/// Cost: a few replays (linear in the window's events) and normal equations over the cells each request touches.
/// </summary>
public static class TrafficAnalysis
{
    private const double Ridge = 1e-3;

    /// <summary>
    /// Weight of the prior that a cell shifts as the others do: as much as one request whose latency is all that cell. A cell that
    /// a few requests touch for a few steps stays at the common shift instead of taking the noise of those requests.
    /// </summary>
    private const double Prior = 1;

    public static TrafficReport Analyze(DeploymentModel model, IReadOnlyList<ObservedRequest> window, TrafficOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(window);
        options ??= new TrafficOptions();
        var served = window.Where(o => model.CheckRequest(o.InputLength, o.OutputLength) is null).ToArray();
        if (served.Length == 0)
        {
            throw new ArgumentException($"none of the window's {window.Count} requests fits the deployment's buckets ({model.Buckets})");
        }

        var start = served.Min(o => o.ArrivalMs);
        var trace = served.Select(o => new TraceRequest(o.ArrivalMs - start, o.InputLength, o.OutputLength)).ToArray();
        var cells = new CostCells(model);
        var atProfile = Replay(model, cells, trace, served, new double[cells.Count], options);
        var ttftMape = 100 * served.Select((o, n) => Math.Abs(o.TtftMs - atProfile.Run.Requests[n].TtftMs) / o.TtftMs).Average();
        var e2eMape = 100 * served.Select((o, n) => Math.Abs(o.E2eMs - atProfile.Run.Requests[n].E2eMs) / o.E2eMs).Average();
        var fit = Descend(model, cells, trace, served, options, atProfile, new double[cells.Count], 0);

        // Gauss-Newton from the profile's costs cannot cross into a queue the profile never had (a device slower everywhere, overloaded
        // by traffic its profile sustains): where its costs still leave the window's median E2E off by half the smallest shift that
        // counts, it starts again from the shift all cells share, and the better explanation of the window is kept.
        if (Math.Abs(MedianResidual(served, fit.Replay.Run)) >= options.MinRelativeShift / 2 &&
            CommonStart(model, cells, trace, served, atProfile.Run, options) is var start0 && start0 != 0)
        {
            var uniform = new double[cells.Count];
            Array.Fill(uniform, start0);
            var again = Descend(model, cells, trace, served, options, Replay(model, cells, trace, served, uniform, options), uniform, start0);
            if (Math.Abs(MedianResidual(served, again.Replay.Run)) < Math.Abs(MedianResidual(served, fit.Replay.Run)))
            {
                fit = again;
            }
        }

        var (shift, se, common, replay, observations, active) = fit;
        var steps = replay.Exposure.Steps;
        var result = new List<CellHealth>();
        foreach (var c in active)
        {
            var band = Math.Max(options.MinRelativeShift, options.Z * cells.RelativeFitError(c));
            var own = Math.Abs(shift[c] - common);
            var judged = observations[c] >= options.MinObservations;
            var outOfBand = judged && own > band && own > options.Z * se[c];
            // The cost on the machine as it was profiled: the shift all cells share (the machine now) is not the cell's, and a cost
            // that kept it would be off against the model's other cells once the machine is back as it was.
            double? estimate = steps[c] >= options.MinEstimateSteps && se[c] <= options.MaxEstimateError && common > MinShift
                ? cells.Cost(c) * (1 + shift[c]) / (1 + common)
                : null;
            result.Add(new CellHealth(cells.Id(c), observations[c], steps[c], shift[c], se[c], band, outOfBand, cells.Cost(c), estimate)
            {
                Judged = judged,
            });
        }

        return new TrafficReport(served.Length, window.Count - served.Length, ttftMape, e2eMape, common, result, start,
            served.Max(o => o.ArrivalMs));
    }

    private sealed record Descent(double[] Shift, double[] Se, double Common, ReplayResult Replay, int[] Observations, int[] Active);

    /// <summary>
    /// Gauss-Newton on the replay from <paramref name="shift"/> (replayed as <paramref name="replay"/>): the exposures are the derivatives
    /// at the current costs. Queueing makes them too small far from the true costs (a slower cell also lengthens the queue), so steps
    /// are damped, no cell moves by more than MaxStep in one round, and a step that raises the cells' scores (see Replay) is undone and
    /// the damping halved. (The window's own squared error is rugged at the scale of one step, as admissions move by a step here and
    /// there; it cannot judge a step.) Ends with the shifts' standard errors at the final costs.
    /// </summary>
    private static Descent Descend(DeploymentModel model, CostCells cells, TraceRequest[] trace, ObservedRequest[] served, TrafficOptions options,
        ReplayResult replay, double[] shift, double common)
    {
        var se = new double[cells.Count];
        var (observations, active) = Exposed(replay, cells);
        var damping = Damping;
        for (var iteration = 0; iteration < Math.Max(1, options.Iterations) && active.Length > 0; iteration++)
        {
            var delta = Solve(replay.Rows, active, shift, common, se);
            var trial = (double[])shift.Clone();
            var largest = 0.0;
            foreach (var c in active)
            {
                var step = Math.Clamp(damping * delta[c], -MaxStep, MaxStep);
                largest = Math.Max(largest, Math.Abs(step));
                trial[c] = Math.Max(MinShift, shift[c] + step);
            }

            var next = Replay(model, cells, trace, served, trial, options);
            if (next.Error <= replay.Error)
            {
                (shift, replay) = (trial, next);
                (observations, active) = Exposed(replay, cells);
            }
            else
            {
                damping /= 2;
            }

            var judged = active.Where(c => observations[c] >= options.MinObservations).Select(c => shift[c]).Order().ToArray();
            common = judged.Length == 0 ? 0 : RepeatStatistic.QuantileOfSorted(judged, 0.5);
            if (largest < 1e-3 || damping < MinDamping)
            {
                break;
            }
        }

        if (active.Length > 0)
        {
            _ = Solve(replay.Rows, active, shift, common, se); // standard errors at the final costs
        }

        return new Descent(shift, se, common, replay, observations, active);
    }

    /// <summary>The median over the window of <c>(observed - replayed) / replayed</c> E2E.</summary>
    private static double MedianResidual(ObservedRequest[] observed, ServingRun run)
    {
        var residuals = new double[observed.Length];
        for (var n = 0; n < observed.Length; n++)
        {
            var pred = run.Requests[n].E2eMs;
            residuals[n] = pred > 0 ? (observed[n].E2eMs - pred) / pred : 0;
        }

        Array.Sort(residuals);
        return RepeatStatistic.QuantileOfSorted(residuals, 0.5);
    }

    /// <summary>Largest common shift searched: a device 20 times slower than its profile is a different device.</summary>
    private const double MaxCommon = 20;

    /// <summary>
    /// Where the cells start: the shift all of them share that makes the window's median relative E2E residual zero, found by bracketing
    /// and bisection over replays with every cost scaled alike; 0 when the profile's replay is already within half the smallest shift
    /// that counts. A device slower everywhere can be overloaded by traffic its profile sustains; its queue then grows through the
    /// window and every latency is many times the profile's replay. Gauss-Newton from the profile cannot cross that (the exposures at
    /// the profile's costs know no queue), so the machine is found first, as one number, and the cells' own shifts from there.
    /// </summary>
    private static double CommonStart(DeploymentModel model, CostCells cells, TraceRequest[] trace, ObservedRequest[] observed, ServingRun atProfile,
        TrafficOptions options)
    {
        var uniform = new double[cells.Count];
        double At(double s)
        {
            Array.Fill(uniform, s);
            return MedianResidual(observed, ServingSimulation.Simulate(Scaled(model, cells, uniform), trace, options.MaxNumSeqs, options.Replicas));
        }

        var atZero = MedianResidual(observed, atProfile);
        if (!double.IsFinite(atZero) || Math.Abs(atZero) < options.MinRelativeShift / 2)
        {
            return 0;
        }

        // Bracket the root: the residual falls as every cost grows.
        double lo, hi;
        if (atZero > 0)
        {
            (lo, hi) = (0, Math.Min(MaxCommon, atZero));
            while (hi < MaxCommon && At(hi) > 0)
            {
                (lo, hi) = (hi, Math.Min(MaxCommon, (2 * hi) + 0.1));
            }
        }
        else
        {
            (lo, hi) = (Math.Max(MinShift, atZero), 0);
            while (lo > MinShift && At(lo) < 0)
            {
                (lo, hi) = (Math.Max(MinShift, (lo - 1) / 2), lo);
            }
        }

        for (var round = 0; round < 24 && hi - lo > 1e-3 * (1 + Math.Abs(hi)); round++)
        {
            var mid = (lo + hi) / 2;
            if (At(mid) > 0)
            {
                lo = mid;
            }
            else
            {
                hi = mid;
            }
        }

        return (lo + hi) / 2;
    }

    /// <summary>Requests whose E2E each cell is part of, and the cells some request is exposed to.</summary>
    private static (int[] Observations, int[] Active) Exposed(ReplayResult replay, CostCells cells)
    {
        var observations = new int[cells.Count];
        foreach (var row in replay.Exposure.E2e)
        {
            foreach (var c in row.Cells)
            {
                observations[c]++;
            }
        }

        foreach (var row in replay.Exposure.Ttft)
        {
            foreach (var c in row.Cells)
            {
                observations[c] = Math.Max(observations[c], 1); // a cell only a TTFT waits through is still a column
            }
        }

        return (observations, [.. Enumerable.Range(0, cells.Count).Where(c => observations[c] > 0)]);
    }

    /// <summary>Most a cell's shift moves in one round.</summary>
    private const double MaxStep = 0.15;

    /// <summary>The share of a Gauss-Newton step taken at first; halved after each step that made the window's error worse.</summary>
    private const double Damping = 0.7;

    private const double MinDamping = 0.05;

    /// <summary>A cell is never found faster than a hundredth of its profile (a cost cannot be zero or negative).</summary>
    private const double MinShift = -0.99;

    private sealed record ReplayResult(ServingRun Run, ExposureRecorder Exposure, List<(ExposureRow X, double Scale, double Y)> Rows, double Error);

    /// <summary>
    /// The window replayed with every cell's cost times <c>1 + shift</c>: one row per observed TTFT and decode part (E2E less TTFT),
    /// relative to the replay's prediction (<c>x = exposure / pred</c>, <c>y = (obs - pred) / pred</c>), and how far the costs are
    /// from explaining it.
    /// </summary>
    private static ReplayResult Replay(DeploymentModel model, CostCells cells, TraceRequest[] trace, ObservedRequest[] observed, double[] shift,
        TrafficOptions options)
    {
        var exposure = new ExposureRecorder(cells, trace, options.Replicas);
        var run = ServingSimulation.Simulate(Scaled(model, cells, shift), trace, options.MaxNumSeqs, options.Replicas, observer: exposure);
        var rows = new List<(ExposureRow, double, double)>(observed.Length * 2);
        for (var n = 0; n < observed.Length; n++)
        {
            Add(exposure.Ttft[n], observed[n].TtftMs, run.Requests[n].TtftMs);
            Add(exposure.E2e[n].Minus(exposure.Ttft[n]), observed[n].E2eMs - observed[n].TtftMs, run.Requests[n].E2eMs - run.Requests[n].TtftMs);
        }

        // The judge of a step: each cell's normalized score (x_c . y)^2 / (x_c . x_c), summed. It is zero where the costs explain
        // the window as well as least squares can, and it sums over many requests, so one admission moved by a step barely counts.
        var g = new double[cells.Count];
        var h = new double[cells.Count];
        foreach (var (x, scale, y) in rows)
        {
            for (var k = 0; k < x.Cells.Length; k++)
            {
                var v = x.Ms[k] * scale;
                g[x.Cells[k]] += v * y;
                h[x.Cells[k]] += v * v;
            }
        }

        var score = 0.0;
        for (var c = 0; c < g.Length; c++)
        {
            score += h[c] > 0 ? g[c] * g[c] / h[c] : 0;
        }

        return new ReplayResult(run, exposure, rows, score / Math.Max(1, rows.Count));

        void Add(ExposureRow x, double obs, double pred)
        {
            if (!(pred > 0))
            {
                return;
            }

            var y = (obs - pred) / pred;
            if (x.Cells.Length > 0)
            {
                rows.Add((x, 1 / pred, y));
            }
        }
    }

    /// <summary>
    /// The step <c>delta</c> of the active cells' shifts: ridge least squares by normal equations, <c>y = x . delta</c>, with a prior
    /// that pulls each cell's shift toward the common one (<see cref="Prior"/>, plus a ridge relative to the cell's own information so
    /// that cells always exposed together stay defined). Writes the shifts' standard errors.
    /// </summary>
    private static double[] Solve(List<(ExposureRow X, double Scale, double Y)> rows, int[] active, double[] shift, double common, double[] se)
    {
        var column = new int[shift.Length];
        Array.Fill(column, -1);
        for (var k = 0; k < active.Length; k++)
        {
            column[active[k]] = k;
        }

        var m = active.Length;
        var xtx = Matrix<double>.Build.Dense(m, m);
        var xty = Vector<double>.Build.Dense(m);
        var cols = new int[m];
        var vals = new double[m];
        var limit = HuberLimit(rows);
        double Weight(double y) => Math.Abs(y) <= limit ? 1 : limit / Math.Abs(y);
        foreach (var (x, scale, y) in rows)
        {
            var w = Weight(y);
            var nnz = 0;
            for (var k = 0; k < x.Cells.Length; k++)
            {
                cols[nnz] = column[x.Cells[k]];
                vals[nnz++] = x.Ms[k] * scale;
            }

            for (var i = 0; i < nnz; i++)
            {
                xty[cols[i]] += w * vals[i] * y;
                for (var j = 0; j < nnz; j++)
                {
                    xtx[cols[i], cols[j]] += w * vals[i] * vals[j];
                }
            }
        }

        for (var k = 0; k < m; k++)
        {
            var ridge = (Ridge * xtx[k, k]) + Prior;
            xtx[k, k] += ridge;
            xty[k] += ridge * (common - shift[active[k]]);
        }

        var inverse = xtx.Inverse();
        var beta = inverse * xty;
        double rss = 0;
        foreach (var (x, scale, y) in rows)
        {
            var fit = 0.0;
            for (var k = 0; k < x.Cells.Length; k++)
            {
                fit += x.Ms[k] * scale * beta[column[x.Cells[k]]];
            }

            rss += Weight(y) * (y - fit) * (y - fit);
        }

        var sigma2 = rss / Math.Max(1, rows.Count - m);
        var delta = new double[shift.Length];
        for (var k = 0; k < m; k++)
        {
            delta[active[k]] = beta[k];
            se[active[k]] = Math.Sqrt(Math.Max(0, inverse[k, k] * sigma2));
        }

        return delta;
    }

    /// <summary>Huber's tuning constant: 95% of least squares' efficiency where the residuals are normal.</summary>
    private const double Huber = 1.345;

    /// <summary>Median absolute residual to standard deviation, for a normal distribution.</summary>
    private const double MadToSigma = 1.4826;

    /// <summary>
    /// The residual beyond which a row's weight falls as 1 / |residual| (Huber): <see cref="Huber"/> robust standard deviations of
    /// the rows' residuals at the current costs. Latencies on a shared machine have a long upper tail (a request that waited behind
    /// an interruption is several times its prediction); least squares would take the cells' shifts up with it.
    /// </summary>
    private static double HuberLimit(List<(ExposureRow X, double Scale, double Y)> rows)
    {
        var magnitudes = rows.Select(r => Math.Abs(r.Y)).Order().ToArray();
        var sigma = magnitudes.Length == 0 ? 0 : MadToSigma * RepeatStatistic.QuantileOfSorted(magnitudes, 0.5);
        return sigma > 0 ? Huber * sigma : double.PositiveInfinity;
    }

    /// <summary>The model with every cell's cost times <c>1 + shift</c> (a prefill bucket's TTFT with it).</summary>
    internal static DeploymentModel Scaled(DeploymentModel model, CostCells cells, double[] shift)
    {
        var prefill = model.PrefillBuckets.Select((p, i) => p with
        {
            AMs = p.AMs * Math.Max(0.01, 1 + shift[i]),
            TtftMs = p.TtftMs * Math.Max(0.01, 1 + shift[i]),
        }).ToArray();
        var decode = model.DecodeBuckets.Select((d, k) => d with { StepMs = d.StepMs * Math.Max(0.01, 1 + shift[cells.Prefill + k]) }).ToArray();
        var scaled = new DeploymentModel(model.Buckets, prefill, decode, model.Statistic, model.RelativeNoise, model.Calibration);
        return model.Policy.IsDefault ? scaled : scaled.WithPolicy(model.Policy);
    }
}
