namespace Lens.Core.Tests;

/// <summary>The policy-independent fit (method.md, "One fit for every policy") against today's fit and simulated devices.</summary>
public class PolicyFitTests
{
    private static DeploymentModel Truth(BucketSet buckets, SchedulingPolicy policy) =>
        PolicyModelTests.Model(buckets, policy, (row, column) => 2 + (row * 0.35) + (column / 200.0), p => 15 + (p / 16.0));

    [Fact]
    public void Prefill_first_padded_gives_the_bucket_fits_numbers_to_the_digit_where_the_plan_has_no_spare_equation()
    {
        // Prefill and decode buckets share their edges and the longest prompt is the longest sequence: every A[p] comes from one
        // intercept and every S[d] from one pair, so both fits solve the same square system, noise and repeats included.
        var buckets = new BucketSet([128, 256, 512], [128, 256, 512]);
        var truth = Truth(buckets, SchedulingPolicy.Default);
        var plan = ProfilingPlanner.Create(buckets, new PlanOptions(Repeats: 3));
        Assert.Equal(plan.Rows, PolicyPlanner.Create(buckets, SchedulingPolicy.Default, new PlanOptions(Repeats: 3)).Rows);
        var measured = PolicyDevice.Measure(truth, plan.Rows, noise: 0.03, seed: 5);
        var today = BucketFitter.Fit(buckets, measured, RepeatStatistic.Min);
        var fit = PolicyFitter.Fit(buckets, SchedulingPolicy.Default, measured, RepeatStatistic.Min).Model;
        for (var i = 0; i < buckets.Prefill.Length; i++)
        {
            Assert.Equal(today.PrefillMs(i), fit.PrefillMs(i), 1e-9 * today.PrefillMs(i));
            Assert.Equal(today.TtftMs(i), fit.TtftMs(i), 1e-9 * today.TtftMs(i));
        }

        for (var j = 0; j < buckets.Decode.Length; j++)
        {
            Assert.Equal(today.StepMs(0, j), fit.StepMs(0, j), 1e-9 * today.StepMs(0, j));
        }
    }

    [Fact]
    public void Prefill_first_padded_with_spare_equations_matches_exactly_without_noise_and_within_the_standard_errors_with_it()
    {
        // Pairs beyond the longest prompt and groups of b prefills give A[p] more than once: the one fit uses them all.
        var buckets = new BucketSet([128, 256, 512], [128, 256, 512, 1024], DecodeConvention.AfterAppend, [1, 2, 4]);
        var truth = Truth(buckets, SchedulingPolicy.Default);
        var plan = ProfilingPlanner.Create(buckets, new PlanOptions(Repeats: 3));
        var cells = new StepCells(buckets, SchedulingPolicy.Default);
        foreach (var noise in new[] { 0.0, 0.02 })
        {
            var measured = PolicyDevice.Measure(truth, plan.Rows, noise, seed: 11);
            var today = BucketFitter.Fit(buckets, measured, RepeatStatistic.Mean);
            var fit = PolicyFitter.Fit(buckets, SchedulingPolicy.Default, measured, RepeatStatistic.Mean);
            Assert.Empty(fit.Unfitted);
            for (var c = 0; c < cells.Count; c++)
            {
                double old = today.CellMs(c), now = fit.Model.CellMs(c);
                if (noise == 0)
                {
                    Assert.Equal(old, now, 1e-9 * old);
                    Assert.Equal(truth.CellMs(c), now, 1e-9 * old);
                }
                else
                {
                    var band = 3 * Math.Max(today.CellStandardError(c), fit.Model.CellStandardError(c));
                    Assert.True(Math.Abs(old - now) <= band, $"{cells.Name(c)}: today {old}, policy fit {now}, band {band}");
                }
            }
        }
    }

    public static TheoryData<string> Policies => ["paged", "chunked"];

    [Theory]
    [MemberData(nameof(Policies))]
    public void A_simulated_device_is_recovered_within_the_standard_errors(string name)
    {
        var (buckets, policy) = name == "paged"
            ? (BucketSet.Paged([64, 128, 256], [16, 32, 64, 128], DecodeConvention.AfterAppend, [1, 2, 4]), SchedulingPolicy.PagedDecode(8, maxModelLen: 512))
            : (new BucketSet([64], [64, 128, 256], DecodeConvention.AfterAppend, [4, 16, 64]), SchedulingPolicy.ChunkedPrefill(64, [4, 16, 64], 4));
        var truth = Truth(buckets, policy);
        var plan = PolicyPlanner.Create(buckets, policy, new PlanOptions(Repeats: 4, Seed: 3));
        Assert.Empty(plan.NotIdentifiable);
        var measured = PolicyDevice.Measure(truth, plan.Rows, noise: 0.02, seed: 7);
        var fit = PolicyFitter.Fit(buckets, policy, measured, RepeatStatistic.Mean);
        var reached = plan.Cells.Where(c => c.Measurements > 0).Select(c => c.Cell).ToArray();
        Assert.NotEmpty(reached);
        int within2 = 0, total = 0;
        foreach (var c in reached)
        {
            var cell = fit.Cells[c];
            var error = Math.Abs(cell.Ms - truth.CellMs(c));
            Assert.True(cell.StandardError > 0, $"{cell.Name}: no standard error");
            Assert.True(error <= 3 * cell.StandardError, $"{cell.Name}: fit {cell.Ms}, truth {truth.CellMs(c)}, SE {cell.StandardError}");
            within2 += error <= 2 * cell.StandardError ? 1 : 0;
            total++;
        }

        Assert.True(within2 >= 0.8 * total, $"{within2} of {total} cells within 2 SE");

        // Cells no release reaches are unfitted and named, never guessed.
        foreach (var (cell, _) in plan.Unreachable)
        {
            var f = fit.Cells.Single(x => x.Name == cell);
            Assert.True(double.IsNaN(f.Ms), $"{cell} was guessed");
            Assert.NotNull(f.Note);
        }
    }

    [Fact]
    public void Non_negative_least_squares_holds_a_negative_coefficient_at_zero_and_keeps_an_interior_solution()
    {
        var a = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.DenseOfArray(new double[,] { { 1, 0 }, { 0, 1 }, { 1, 1 } });
        var interior = NonNegativeLeastSquares.Solve(a, MathNet.Numerics.LinearAlgebra.Vector<double>.Build.DenseOfArray([1, 2, 3]));
        Assert.Equal(1, interior.X[0], 1e-12);
        Assert.Equal(2, interior.X[1], 1e-12);
        Assert.DoesNotContain(true, interior.Held);
        // Unconstrained: x = (2, -1) for b = (2, -1, 1); held: x1 = 0 and x0 the best for it, (2 + 1) / 2.
        var held = NonNegativeLeastSquares.Solve(a, MathNet.Numerics.LinearAlgebra.Vector<double>.Build.DenseOfArray([2, -1, 1]));
        Assert.Equal(1.5, held.X[0], 1e-12);
        Assert.Equal(0, held.X[1]);
        Assert.True(held.Held[1]);
    }
}
