using System.Globalization;
using System.Text.Json;
using Lens.ClusterDrill;

// lens cluster drill: see Drill. Options: --requests N (most load requests), --devices N, --repeats N, --no-kill,
// --work-dir DIR (silo logs), --json (print the report as JSON). The Azure Storage connection string is read from
// LENS_DRILL_STORAGE (default UseDevelopmentStorage=true, i.e. Azurite on 127.0.0.1:10002). Exit 0 when every property held.
var options = new DrillOptions
{
    ConnectionString = Environment.GetEnvironmentVariable("LENS_DRILL_STORAGE") is { Length: > 0 } cs ? cs : "UseDevelopmentStorage=true",
};
var json = false;
for (var i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    int Number() => int.Parse(Next(), CultureInfo.InvariantCulture);
    switch (args[i])
    {
        case "--requests": options = options with { MaxRequests = Number() }; break;
        case "--devices": options = options with { ProfilingDevices = Number() }; break;
        case "--repeats": options = options with { ProfileRepeats = Number() }; break;
        case "--no-kill": options = options with { Kill = false }; break;
        case "--work-dir": options = options with { WorkDirectory = Path.GetFullPath(Next()) }; break;
        case "--lens-dll": options = options with { LensDll = Path.GetFullPath(Next()) }; break;
        case "--json": json = true; break;
        default:
            Console.Error.WriteLine($"unknown option {args[i]}");
            return 2;
    }
}

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

DrillReport report;
try
{
    report = await Drill.RunAsync(options, cancel.Token);
}
catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or FileNotFoundException or OperationCanceledException)
{
    Console.Error.WriteLine($"drill: {ex.Message}");
    return 1;
}

if (json)
{
    Console.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
}
else
{
    Console.WriteLine($"""
        cluster drill: {report.Silos} silos (active at start {report.ActiveSilosAtStart}, at end {report.ActiveSilosAtEnd}); silo logs in {report.WorkDirectory}
          every silo served a prediction directly: {string.Join(", ", report.EverySiloServedDirectly)}
          requests: {report.Requests} issued, {report.Served} served, {report.Failed} failed, {report.Retried} retried ({report.FailedAttempts} failed attempts: {report.UnreachableAttempts} unreachable silo, {report.ServerErrorAttempts} 5xx, {report.TimedOutAttempts} timed out)
                    {report.Predictions} predictions, {report.Imports} imports; served by silo: {string.Join(" / ", report.ServedBySilo)}
          killed silo: {report.KilledSilo?.ToString(CultureInfo.InvariantCulture) ?? "none"} (SIGKILL after {report.RequestsBeforeKill} requests, hosting {report.ProfilesOnKilledSilo} device(s) profiling, {report.ProfilesUnfinishedAtKill} unfinished, {report.ProfileRowsDoneAtKill} rows done; {report.ProfileRowsDoneAtKillKept} of them kept after recovery)
          measurements: {report.MeasurementsBeforeKill} before the kill, {report.MeasurementsAfter} after
          profiles: {report.ProfileRowsStored} of {report.ProfileRowsExpected} planned rows stored, {report.ProfileRowsLost} lost, {report.ProfileRowsDuplicated} duplicated; completed {report.SecondsToRecover} s after the kill
          imports: {report.ImportsStored} of {report.ImportsExpected} stored
        result: {(report.Passed ? "PASSED" : "FAILED")}{string.Concat(report.Problems.Select(p => "\n  - " + p))}
        """);
}

return report.Passed ? 0 : 1;
