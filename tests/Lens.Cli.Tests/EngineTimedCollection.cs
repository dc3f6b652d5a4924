namespace Lens.Cli.Tests;

/// <summary>
/// CLI tests whose assertions compare engine timings across phases of one run (a slowdown must show against the steady phase):
/// they run alone, after the parallel tests, so that other tests' engines on the same two cores do not make one phase slower
/// than another. A CI run saw TrafficDemoTests' steady windows at a common shift of +0.33 and +0.84 while other CLI tests ran
/// beside it, above the device-wide slowdown phase that followed.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EngineTimedCollection
{
    public const string Name = "engine-timed (alone)";
}
