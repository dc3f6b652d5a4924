using Lens.Abstractions;

namespace Lens.WebConsole;

/// <summary>One word for a deployment's state, from its health (profile progress, stale and drifting buckets), and its CSS class.</summary>
public readonly record struct HealthBadge(string Text, string Css)
{
    public static HealthBadge Of(DeploymentHealth health)
    {
        ArgumentNullException.ThrowIfNull(health);
        var stale = health.Buckets.Count(b => b.Stale);
        var drifting = health.Buckets.Count(b => b.Drifting);
        return health.Profile.State switch
        {
            ProfileState.Queued or ProfileState.Running => new("profiling", "info"),
            ProfileState.Failed => new("profile failed", "bad"),
            _ when health.Buckets.All(b => b.LastProfiled is null) => new("not profiled", "muted"),
            _ when stale > 0 => new($"{stale} stale", "bad"),
            _ when drifting > 0 => new($"{drifting} drifting", "warn"),
            _ => new("healthy", "good"),
        };
    }

    /// <summary>When any bucket was last profiled, or null.</summary>
    public static DateTimeOffset? LastProfiled(DeploymentHealth health) =>
        health?.Buckets.Select(b => b.LastProfiled).Where(t => t is not null).DefaultIfEmpty().Max();
}
