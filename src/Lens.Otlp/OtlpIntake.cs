using Lens.Core;

namespace Lens.Otlp;

/// <summary>The deployment a span belongs to: its resource's <c>lens.device</c> and <c>lens.deployment</c> attributes.</summary>
public readonly record struct DeploymentRef(string Device, string Deployment);

/// <summary>A body that is not an OTLP trace export (or breaks a bound): nothing of it is used. The message says why.</summary>
public sealed class OtlpFormatException(string message) : FormatException(message);

/// <summary>
/// What one OTLP trace export held: the LLM request spans per deployment, read into <see cref="ObservedRequest"/>s, and the count
/// of every span that was not used and why.
/// </summary>
public sealed class OtlpIntake
{
    private readonly Dictionary<DeploymentRef, List<ObservedRequest>> _requests = [];

    /// <summary>LLM requests per deployment, in the order the body held them.</summary>
    public IReadOnlyDictionary<DeploymentRef, List<ObservedRequest>> Requests => _requests;

    /// <summary>Spans in the body.</summary>
    public int Spans { get; internal set; }

    /// <summary>Spans that are not LLM requests (they lack one of the four <c>gen_ai</c> attributes): ignored.</summary>
    public int Ignored { get; internal set; }

    /// <summary>LLM request spans whose resource names no deployment (no <c>lens.device</c> or <c>lens.deployment</c>).</summary>
    public int Unrouted { get; internal set; }

    /// <summary>LLM request spans whose values cannot be a served request (negative latency, TTFT above E2E, ...).</summary>
    public int Invalid { get; internal set; }

    /// <summary>The first reason a span was unrouted or invalid, for the exporter's partial-success message.</summary>
    public string? FirstProblem { get; internal set; }

    /// <summary>LLM request spans read.</summary>
    public int Accepted => _requests.Values.Sum(r => r.Count);

    internal void Add(DeploymentRef deployment, ObservedRequest request)
    {
        if (!_requests.TryGetValue(deployment, out var list))
        {
            _requests[deployment] = list = [];
        }

        list.Add(request);
    }

    internal void Reject(bool unrouted, string problem)
    {
        if (unrouted)
        {
            Unrouted++;
        }
        else
        {
            Invalid++;
        }

        FirstProblem ??= problem;
    }
}
