using System.Text.Json;
using Microsoft.Playwright;

namespace Lens.WebConsole.Tests;

/// <summary>
/// The console end to end in a real browser (Debian's chromium, driven by Playwright) against a real LENS server with two tenants:
/// sign-in, a reference-engine deployment profiled live, the curves' bucket edges, a single-bucket re-profile, monitoring, what-if
/// and its advice, downloads, sign-out, tenant isolation and the wrong-key limit. Screenshots of every page go to the test output folder
/// (<c>screenshots/</c>). Every wait is bounded.
/// </summary>
public sealed class ConsoleBrowserTests(ConsoleHost host) : IClassFixture<ConsoleHost>
{
    private const float Wait = 30_000;
    private const float ProfileWait = 240_000;

    /// <summary>Requests per live-traffic window in the console's test host.</summary>
    public const int TrafficWindow = 50;

    private static string ScreenshotDir => Path.Combine(AppContext.BaseDirectory, "screenshots");

    /// <summary>Debian's chromium (LENS_CHROMIUM overrides the path).</summary>
    public static string ChromiumPath => Environment.GetEnvironmentVariable("LENS_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    [Fact]
    public async Task A_tenant_profiles_reads_curves_reprofiles_runs_what_if_and_signs_out_and_no_other_tenant_sees_it()
    {
        Assert.True(File.Exists(ChromiumPath), $"chromium not found at {ChromiumPath}: scripts/test.sh installs it (apt-get install chromium)");
        Directory.CreateDirectory(ScreenshotDir);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = ChromiumPath, Headless = true, Args = ["--no-sandbox"] });
        var context = await browser.NewContextAsync(new() { ViewportSize = new() { Width = 1280, Height = 800 }, BaseURL = host.Server.HttpAddress.ToString() });
        context.SetDefaultTimeout(Wait);
        var page = await context.NewPageAsync();
        try
        {
            await WalkThroughAsync(context, page);
        }
        catch
        {
            await Shot(page, "failure"); // what the page showed when a step failed
            throw;
        }
    }

    private async Task WalkThroughAsync(IBrowserContext context, IPage page)
    {
        // Signed out, the console sends the browser to the sign-in page; a wrong key is refused with a clear message.
        await page.GotoAsync("/ui");
        Assert.EndsWith("/ui/signin", new Uri(page.Url).AbsolutePath, StringComparison.Ordinal);
        await Shot(page, "signin");
        await SignInAsync(page, "not-a-key-of-anyone-123");
        Assert.Contains("not valid", await page.Locator("#signin-error").InnerTextAsync(), StringComparison.Ordinal);

        await SignInAsync(page, ConsoleHost.AcmeKey);
        await page.WaitForURLAsync("**/ui");
        Assert.Equal("acme", await page.Locator("#tenant-name").InnerTextAsync());
        var cookie = Assert.Single(await context.CookiesAsync(), c => c.Name == "lens.console");
        Assert.True(cookie.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, cookie.SameSite);
        Assert.DoesNotContain(ConsoleHost.AcmeKey, cookie.Value, StringComparison.Ordinal);
        await Live(page);
        Assert.Contains("No deployments yet", await page.Locator("#empty-state").InnerTextAsync(), StringComparison.Ordinal);
        Assert.Contains("No devices yet", await page.Locator("#devices-empty").InnerTextAsync(), StringComparison.Ordinal);
        await Shot(page, "deployments-empty");

        // A reference-engine deployment on the tiny profile (the form's defaults: P = 16,32,64, D = 16,32,64,128).
        await page.Locator("#f-name").FillAsync("console-llama");
        await page.Locator("#create").ClickAsync();
        await page.WaitForURLAsync("**/deployments/console-llama-*");
        var deploymentPath = new Uri(page.Url).AbsolutePath;
        await Live(page);

        // Profile every bucket: the button is disabled until the page is live (a click on the prerendered page would be lost, issue 17
        // item 12); then progress updates in place until it reaches 100%.
        await page.Locator("#profile-all:enabled").WaitForAsync();
        await page.Locator("#profile-all").ClickAsync();
        await page.Locator("#profile-state[data-state=running], #profile-state[data-state=queued], #profile-state[data-state=completed]").WaitForAsync();
        await page.Locator("#profile-state[data-state=completed]").WaitForAsync(new() { Timeout = ProfileWait });
        var progress = page.Locator("#profile-progress");
        Assert.Equal(await progress.GetAttributeAsync("max"), await progress.GetAttributeAsync("value"));
        Assert.Contains("100%", await page.Locator("#profile-state").InnerTextAsync(), StringComparison.Ordinal);

        // The curves are drawn with the prefill bucket edges marked and measured points overlaid.
        await page.Locator("#chart-ttft").WaitForAsync();
        var edges = await page.Locator("#chart-ttft line[data-kind=prefill]").EvaluateAllAsync<int[]>("els => els.map(e => +e.dataset.edge)");
        Assert.Equal([16, 32, 64], edges);
        Assert.True(await page.Locator("#chart-ttft circle.measured").CountAsync() > 0);
        Assert.True(await page.Locator("#chart-e2e path.curve").CountAsync() == 1);
        await page.Locator("#req-input").FillAsync("20");
        await page.Locator("#req-output").FillAsync("50");
        await page.Locator("#breakdown").ClickAsync();
        Assert.Contains("E2E", await page.Locator("#prediction").InnerTextAsync(), StringComparison.Ordinal);
        Assert.True(await page.Locator("#breakdown-table tbody tr").CountAsync() >= 2);
        await Shot(page, "deployment");

        // Re-profile one bucket from the table: its version changes, without a reload.
        var row = page.Locator("tr[data-bucket='decode-64']");
        var before = await row.GetAttributeAsync("data-version");
        await row.GetByRole(AriaRole.Button).ClickAsync();
        await page.Locator($"tr[data-bucket='decode-64']:not([data-version='{before}'])").WaitForAsync(new() { Timeout = ProfileWait });
        Assert.True(long.Parse(await row.GetAttributeAsync("data-version") ?? "0", System.Globalization.CultureInfo.InvariantCulture) >
                    long.Parse(before!, System.Globalization.CultureInfo.InvariantCulture));

        // The server's prerendered HTML (no circuit, no handlers) offers no button that could be clicked in vain; sign-out is a plain
        // form post, which works without the circuit.
        var prerendered = await (await page.APIRequest.GetAsync(deploymentPath)).TextAsync();
        Assert.Contains("data-interactive=\"false\"", prerendered, StringComparison.Ordinal);
        Assert.Contains("<button type=\"submit\" id=\"sign-out\">", prerendered, StringComparison.Ordinal);
        var buttons = System.Text.RegularExpressions.Regex.Matches(prerendered, "<button[^>]*>").Select(m => m.Value)
            .Where(b => !b.Contains("id=\"sign-out\"", StringComparison.Ordinal)).ToArray();
        Assert.Contains(buttons, b => b.Contains("id=\"profile-all\"", StringComparison.Ordinal));
        Assert.True(buttons.Length >= 9, string.Join("\n", buttons)); // profile-all, 7 re-profiles, draw, predict
        Assert.All(buttons, b => Assert.Contains(" disabled", b, StringComparison.Ordinal));

        // Downloads carry the signed-in session's cookie.
        var model = await page.APIRequest.GetAsync(deploymentPath + "/model.json");
        Assert.Equal(200, model.Status);
        Assert.Equal("lens-model", JsonDocument.Parse(await model.TextAsync()).RootElement.GetProperty("format").GetString());
        var csv = await page.APIRequest.GetAsync(deploymentPath + "/measurements.csv");
        Assert.StartsWith("bucket,input_len,output_len,e2e_ms", await csv.TextAsync(), StringComparison.Ordinal);

        // Production latencies reported through the HTTP API (40 requests, 1.5 times slower than predicted) show on the monitoring page.
        var deploymentId = deploymentPath[(deploymentPath.LastIndexOf('/') + 1)..];
        using (var http = new HttpClient { BaseAddress = host.Server.HttpAddress })
        {
            var api = new Lens.Client.LensHttpClient(http, ConsoleHost.AcmeKey);
            var observed = new List<Lens.Abstractions.MeasurementInput>();
            for (var n = 0; n < 40; n++)
            {
                var (i, o) = (1 + n % 60, 8 + n % 20);
                var p = await api.PredictAsync("cpu-0", deploymentId, i, o);
                observed.Add(new(i, o, p.E2eMs * 1.5, p.TtftMs * 1.5));
            }

            await api.ReportTelemetryAsync("cpu-0", deploymentId, new([.. observed], "console-test"));
        }

        await page.GotoAsync(deploymentPath + "/monitoring");
        await Live(page);
        Assert.Equal(7, await page.Locator("#health tbody tr").CountAsync()); // 3 prefill + 4 decode buckets
        Assert.Equal(0, await page.Locator("#no-telemetry").CountAsync());
        var observations = await page.Locator("#health tbody tr td:nth-of-type(1)").EvaluateAllAsync<int[]>("els => els.map(e => +e.textContent)");
        Assert.True(observations.Sum() >= 40, $"observations per bucket: {string.Join(", ", observations)}"); // each touches 1-3 buckets
        Assert.Equal("1", await page.Locator("#health-history").GetAttributeAsync("data-entries")); // one batch: one analysis
        Assert.Equal("1", await page.Locator("#chart-history path.line-common").GetAttributeAsync("data-points"));
        Assert.True(await page.Locator("#chart-history path.line-bucket").CountAsync() >= 2);
        Assert.True(await page.Locator("#chart-history").IsVisibleAsync());
        Assert.Equal(0, await page.Locator("#no-history").CountAsync());
        await Shot(page, "monitoring");

        // A window of live traffic (OTLP spans, as the model predicts them, one request a second) fills the cell heatmap: one
        // column, a row per cell the window reached, no cell flagged.
        Assert.Equal(0, await page.Locator("#traffic-heatmap").CountAsync());
        using (var http = new HttpClient { BaseAddress = host.Server.HttpAddress })
        {
            var api = new Lens.Client.LensHttpClient(http, ConsoleHost.AcmeKey);
            var spans = new List<object>();
            var start = DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeMilliseconds();
            for (var n = 0; n < TrafficWindow; n++)
            {
                var (i, o) = (1 + (n * 7 % 60), 4 + (n % 12));
                var p = await api.PredictAsync("cpu-0", deploymentId, i, o);
                spans.Add(Span(n, (start + (n * 1000L)) * 1_000_000, i, o, p.TtftMs, p.E2eMs));
            }

            using var body = new StringContent(JsonSerializer.Serialize(new
            {
                resourceSpans = new[]
                {
                    new
                    {
                        resource = new { attributes = new[] { Text("lens.device", "cpu-0"), Text("lens.deployment", deploymentId) } },
                        scopeSpans = new[] { new { spans } },
                    },
                },
            }), System.Text.Encoding.UTF8, "application/json");
            body.Headers.Add("X-Api-Key", ConsoleHost.AcmeKey);
            using var export = await http.PostAsync("v1/traces", body);
            Assert.True(export.IsSuccessStatusCode, await export.Content.ReadAsStringAsync());
            Assert.Equal(1, (await api.GetTrafficAsync("cpu-0", deploymentId)).Analyses);
        }

        await page.GotoAsync(deploymentPath + "/monitoring");
        await Live(page);
        Assert.Equal("1", await page.Locator("#traffic-heatmap").GetAttributeAsync("data-windows"));
        var cells = int.Parse(await page.Locator("#traffic-heatmap").GetAttributeAsync("data-cells") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(cells, 2, 7);
        Assert.Equal(cells, await page.Locator("#chart-traffic-heatmap rect.heat").CountAsync());
        Assert.Equal(0, await page.Locator("#chart-traffic-heatmap rect.marked").CountAsync());
        Assert.True(await page.Locator("#chart-traffic-heatmap").IsVisibleAsync());
        await Shot(page, "monitoring-traffic");

        await page.GotoAsync("/ui");
        await Live(page);
        Assert.Equal(1, await page.Locator("#deployments tbody tr").CountAsync());
        // The device of the first deployment is listed now, a link to its deployments.
        Assert.Equal(0, await page.Locator("#devices-empty").CountAsync());
        var listed = page.Locator("#device-list li[data-device='cpu-0'] a");
        Assert.Equal("cpu-0", await listed.InnerTextAsync());
        Assert.Equal("/ui?device=cpu-0", await listed.GetAttributeAsync("href"));
        await Shot(page, "deployments");

        // What-if: a Poisson workload and an SLO on the deployment.
        await page.GotoAsync("/ui/what-if");
        await Live(page);
        Assert.Equal(["cpu-0"], await page.Locator("#wi-devices option").EvaluateAllAsync<string[]>("els => els.map(e => e.value)"));
        await page.Locator("#wi-count").FillAsync("300");
        // Outputs of at most 64 tokens: every request (prompts up to 64) fits the profiled decode buckets (128), so the advice below
        // scores the current deployment (the service's advisor leaves out a deployment that cannot serve the workload).
        await page.Locator("#wi-max-output").FillAsync("64");
        await page.Locator("#run-whatif").ClickAsync();
        await page.Locator("#whatif-results").WaitForAsync();
        Assert.Contains("console-llama-", await page.Locator("#whatif-results thead").InnerTextAsync(), StringComparison.Ordinal);
        Assert.Equal(4, await page.Locator("#chart-whatif rect.bar").CountAsync());
        await Shot(page, "what-if");

        // Advise on the profiled deployment for the same workload: a bad batch list is refused in place, then the table ends with the
        // recommendation and the Pareto chart marks it beside the current deployment.
        Assert.Equal(deploymentId, await page.Locator("#adv-deployment").InputValueAsync());
        await page.Locator("#adv-batch").FillAsync("4,2");
        await page.Locator("#run-advise").ClickAsync();
        Assert.Contains("batch buckets: ", await page.Locator("#advise-error[role=alert]").InnerTextAsync(), StringComparison.Ordinal);
        await page.Locator("#adv-batch").FillAsync("");
        await page.Locator("#adv-k").FillAsync("3");
        await page.Locator("#run-advise").ClickAsync();
        await page.Locator("#advice-table tr[data-row=recommended]").WaitForAsync();
        Assert.Equal(0, await page.Locator("#advise-error").CountAsync());
        var adviceRows = await page.Locator("#advice-table tbody tr").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.row)");
        Assert.Equal(["current", "k=1"], adviceRows[..2]);
        Assert.Equal("recommended", adviceRows[^1]);
        Assert.Equal(1, await page.Locator("#chart-advice circle.point-current").CountAsync());
        Assert.Equal(1, await page.Locator("#chart-advice circle.point-recommended").CountAsync());
        Assert.Contains("leave-one-bucket-out", await page.Locator("#advice-curves").InnerTextAsync(), StringComparison.Ordinal);
        await Shot(page, "what-if-advise");

        // The same with an uploaded trace.
        await page.Locator("#wi-use-trace").CheckAsync();
        var trace = new FilePayload
        {
            Name = "trace.csv", MimeType = "text/csv", Buffer = System.Text.Encoding.UTF8.GetBytes("arrival_ms,input_len,output_len\n0,10,20\n5,40,30\n9,60,4\n"),
        };

        // The file input appears when the box is ticked; a file set before Blazor has bound its change handler is not seen, so set
        // it again (bounded) until the page reports it.
        for (var attempt = 1; ; attempt++)
        {
            await page.Locator("#wi-trace").SetInputFilesAsync(trace);
            try
            {
                await page.GetByText("trace.csv: 3 requests").WaitForAsync(new() { Timeout = 10_000 });
                break;
            }
            catch (TimeoutException) when (attempt < 3)
            {
            }
        }
        await page.Locator("#run-whatif").ClickAsync();
        await page.Locator("#whatif-results tbody tr:first-child td:text-is('3')").WaitForAsync();

        // Narrow window: still usable (no horizontal scroll of the page itself).
        await page.SetViewportSizeAsync(390, 844);
        await page.GotoAsync(deploymentPath);
        await Live(page);
        Assert.True(await page.EvaluateAsync<bool>("document.documentElement.scrollWidth <= window.innerWidth + 1"));
        await Shot(page, "deployment-narrow");
        await page.SetViewportSizeAsync(1280, 800);

        // Sign out: the session ends.
        await page.Locator("#sign-out").ClickAsync();
        await page.WaitForURLAsync("**/ui/signin?signedOut=1");
        await page.GotoAsync(deploymentPath);
        Assert.EndsWith("/ui/signin", new Uri(page.Url).AbsolutePath, StringComparison.Ordinal);
        Assert.Equal(302, (await page.APIRequest.GetAsync(deploymentPath + "/model.json", new() { MaxRedirects = 0 })).Status);

        // The other tenant sees none of it, not even by URL.
        await SignInAsync(page, ConsoleHost.GlobexKey);
        await page.WaitForURLAsync("**/ui");
        await Live(page);
        Assert.Equal("globex", await page.Locator("#tenant-name").InnerTextAsync());
        Assert.Equal(1, await page.Locator("#empty-state").CountAsync());
        Assert.Equal(1, await page.Locator("#devices-empty").CountAsync());
        Assert.Equal(0, await page.Locator("#device-list li[data-device='cpu-0']").CountAsync());
        await page.GotoAsync(deploymentPath);
        await Live(page);
        Assert.Contains("does not exist", await page.Locator("#page-error").InnerTextAsync(), StringComparison.Ordinal);
        Assert.Equal(0, await page.Locator("#buckets").CountAsync());
        Assert.Equal(404, (await page.APIRequest.GetAsync(deploymentPath + "/model.json")).Status);
        await page.GotoAsync("/ui/what-if");
        await Live(page);
        Assert.Equal(0, await page.Locator("#whatif-form input[type=checkbox]").CountAsync());
        Assert.Equal(0, await page.Locator("#wi-devices option").CountAsync());
        Assert.Equal(0, await page.Locator("#advise-form").CountAsync());
        Assert.Contains("No profiled deployment", await page.Locator("#advise-empty").InnerTextAsync(), StringComparison.Ordinal);

        // A bad device name is refused with the rule it breaks.
        await page.GotoAsync("/ui?device=no%20spaces");
        await Live(page);
        Assert.Contains("only A-Z a-z 0-9 . _ - are allowed", await page.Locator("#devices-error").InnerTextAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Wrong_keys_are_limited_per_address()
    {
        Assert.True(File.Exists(ChromiumPath), $"chromium not found at {ChromiumPath}: scripts/test.sh installs it (apt-get install chromium)");
        await using var limited = new ConsoleHost();
        await limited.InitializeAsync();
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = ChromiumPath, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync(new() { BaseURL = limited.Server.HttpAddress.ToString() });
        page.SetDefaultTimeout(Wait);
        for (var n = 0; n < WebConsole.ConsoleSignIn.FailuresPerWindow; n++)
        {
            await page.GotoAsync("/ui/signin");
            await SignInAsync(page, $"wrong-key-number-{n}-0123456789");
            Assert.Contains("not valid", await page.Locator("#signin-error").InnerTextAsync(), StringComparison.Ordinal);
        }

        // Now even the right key waits for the window to end.
        await page.GotoAsync("/ui/signin");
        await SignInAsync(page, ConsoleHost.AcmeKey);
        Assert.Contains("too many wrong keys", await page.Locator("#signin-error").InnerTextAsync(), StringComparison.Ordinal);
        Assert.EndsWith("/ui/signin", new Uri(page.Url).AbsolutePath, StringComparison.Ordinal);
    }

    /// <summary>One vLLM-style <c>llm_request</c> span in OTLP JSON (latencies in seconds).</summary>
    private static object Span(int n, long startNanos, int input, int output, double ttftMs, double e2eMs) => new
    {
        traceId = n.ToString("x32", System.Globalization.CultureInfo.InvariantCulture),
        spanId = (n + 1).ToString("x16", System.Globalization.CultureInfo.InvariantCulture),
        name = "llm_request",
        startTimeUnixNano = startNanos.ToString(System.Globalization.CultureInfo.InvariantCulture),
        endTimeUnixNano = (startNanos + (long)(e2eMs * 1e6)).ToString(System.Globalization.CultureInfo.InvariantCulture),
        attributes = new object[]
        {
            new { key = "gen_ai.usage.prompt_tokens", value = new { intValue = input.ToString(System.Globalization.CultureInfo.InvariantCulture) } },
            new { key = "gen_ai.usage.completion_tokens", value = new { intValue = output.ToString(System.Globalization.CultureInfo.InvariantCulture) } },
            new { key = "gen_ai.latency.time_to_first_token", value = new { doubleValue = ttftMs / 1000 } },
            new { key = "gen_ai.latency.e2e", value = new { doubleValue = e2eMs / 1000 } },
        },
    };

    private static object Text(string key, string value) => new { key, value = new { stringValue = value } };

    private static async Task SignInAsync(IPage page, string key)
    {
        if (!new Uri(page.Url).AbsolutePath.EndsWith("/ui/signin", StringComparison.Ordinal))
        {
            await page.GotoAsync("/ui/signin");
        }

        await page.Locator("#api-key").FillAsync(key);
        await page.Locator("#sign-in").ClickAsync();
        await page.WaitForLoadStateAsync(LoadState.DOMContentLoaded);
    }

    /// <summary>
    /// Waits until this page's circuit is connected (its buttons are enabled and act in place from then on). The marker names the page:
    /// right after an in-place navigation the previous page's marker still says "true".
    /// </summary>
    private static Task Live(IPage page) =>
        page.Locator($"#console-ready[data-interactive=true][data-path='{new Uri(page.Url).AbsolutePath}']").WaitForAsync(new() { State = WaitForSelectorState.Attached });

    private static Task Shot(IPage page, string name) =>
        page.ScreenshotAsync(new() { Path = Path.Combine(ScreenshotDir, name + ".png"), FullPage = true });
}
