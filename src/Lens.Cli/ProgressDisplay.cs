using Lens.Measurement;
using Spectre.Console;

namespace Lens.Cli;

/// <summary>A Spectre progress bar with ETA fed by <see cref="MeasurementProgress"/> reports.</summary>
internal static class ProgressDisplay
{
    public static Task<T> RunAsync<T>(string title, Func<IProgress<MeasurementProgress>, Task<T>> work, IAnsiConsole? console = null) =>
        (console ?? AnsiConsole.Console).Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(context => work(new TaskProgress(context.AddTask(title), title)));

    /// <summary>Updates the bar on the reporting thread, so it is current when the work finishes.</summary>
    private sealed class TaskProgress(ProgressTask task, string title) : IProgress<MeasurementProgress>
    {
        public void Report(MeasurementProgress value)
        {
            task.Description = value.Phase == ProfilePhase.WarmUp ? $"{title}: warm-up" : title;
            task.MaxValue = Math.Max(1, value.Total);
            task.Value = value.Done;
        }
    }
}
