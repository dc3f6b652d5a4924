using Lens.Abstractions;
using Lens.Client;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;

namespace Lens.WebConsole.Components;

/// <summary>
/// A page of a signed-in tenant: <see cref="Lens"/> is the tenant-bound client (the same operations as the HTTP API, through the
/// silo's own cluster client), so a page can only ever address the signed-in tenant's devices. Without a session it sends the
/// browser to the sign-in page.
/// </summary>
public abstract class ConsolePage : ComponentBase
{
    [CascadingParameter] private Task<AuthenticationState>? AuthenticationState { get; set; }

    [Inject] private IClusterClient Cluster { get; set; } = null!;

    [Inject] protected NavigationManager Navigation { get; set; } = null!;

    protected LensClusterClient Lens { get; private set; } = null!;

    protected string? Error { get; set; }

    protected bool SignedIn { get; private set; }

    /// <summary>
    /// Whether the page is live (rendered in its circuit, its handlers attached). Prerendered HTML has no handlers: a click on it
    /// would be lost, so every action button is rendered disabled until this is true (issue 17, item 12).
    /// </summary>
    protected bool Interactive => RendererInfo.IsInteractive;

    protected sealed override async Task OnInitializedAsync()
    {
        var state = AuthenticationState is null ? null : await AuthenticationState;
        if (state?.User.Tenant() is not { } tenant)
        {
            Navigation.NavigateTo(ConsolePaths.SignIn, forceLoad: true);
            return;
        }

        Lens = new LensClusterClient(Cluster, tenant);
        SignedIn = true;
        await LoadAsync();
    }

    /// <summary>Loads the page's data once signed in.</summary>
    protected abstract Task LoadAsync();

    /// <summary>Runs <paramref name="action"/>, showing a LENS error (bad input, not found, conflict) as <see cref="Error"/>.</summary>
    protected async Task<bool> TryAsync(Func<Task> action)
    {
        try
        {
            Error = null;
            await action();
            return true;
        }
        catch (LensException ex)
        {
            Error = Describe(ex);
            return false;
        }
    }

    /// <summary>A LENS error as one line: the message and each field's reasons.</summary>
    public static string Describe(LensException ex)
    {
        ArgumentNullException.ThrowIfNull(ex);
        return ex.Errors is { Count: > 0 } errors
            ? string.Join("; ", errors.SelectMany(e => e.Value.Select(v => v.StartsWith(e.Key + " ", StringComparison.Ordinal) ? v : $"{e.Key}: {v}")))
            : ex.Message;
    }
}
