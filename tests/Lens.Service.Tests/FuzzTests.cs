using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Lens.Abstractions;
using Lens.Client;
using Xunit.Abstractions;

namespace Lens.Service.Tests;

/// <summary>
/// Issue 11: at least 1,000 malformed requests across every route of a real loopback server (bad JSON, wrong media types,
/// huge, negative and overflowing numbers, long and traversing names, empty and oversized bodies, wrong methods), seeded so that
/// every run sends the same ones. None may be answered 5xx, and the profiled deployment they aim at must be unchanged afterwards.
/// </summary>
public sealed class FuzzTests(HttpHostFixture fixture, ITestOutputHelper output) : IClassFixture<HttpHostFixture>
{
    private const int Requests = 1200;
    private const string Device = "fuzz-0";

    private static readonly string[] BadJson =
    [
        "", " ", "{", "}", "[", "]", "{{}", "{\"", "{\"a\":}", "nul", "tru", "\"unterminated", "{\"inputLength\":", "[1,2,", "\u0000\u0001",
        "{\"inputLength\":1}{\"inputLength\":2}", "{'inputLength':1}", "{\"inputLength\":0x10}", "<xml/>", "\uFEFF{", "{\"a\":1,}", "//c\n{}",
    ];

    private static readonly string[] BadNumbers =
    [
        "-1", "0", "-2147483648", "2147483648", "99999999999999999999999", "1e400", "-1e400", "1.5", "NaN", "\"Infinity\"", "\"12\"",
        "true", "null", "[]", "{}", "-0", "1e-400", "4096", "1048576",
    ];

    private static readonly string[] BadNames =
    [
        "..", "%2e%2e", "..%2f..%2fetc", "%2e%2e%2f%2e%2e%2fpasswd", "a%7Cb", "%00", "%20", "a%2Fb", "con", "%E2%80%AE", "%C3%A9t%C3%A9",
        "a.b.c", "-", "_", "x%0Ay", new string('a', 65), new string('b', 300), new string('c', 5000), "%F0%9F%98%80", "acme%7Cfuzz-0",
    ];

    private static readonly string[] MediaTypes =
    [
        "application/json", "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/json; charset=utf-16", "application/vnd.lens.batch", "application/octet-stream", "", "application/problem+json",
    ];

    [Fact]
    public async Task Malformed_requests_on_every_route_get_no_5xx_and_change_nothing_stored()
    {
        var acme = fixture.Acme;
        var spec = TestModels.Spec("fuzz", control: "fuzz-control");
        var id = (await acme.CreateDeploymentAsync(Device, spec)).Id;
        await acme.StartProfileAsync(Device, id);
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            Assert.Equal(ProfileState.Completed, (await acme.WaitForProfileAsync(Device, id, TimeSpan.FromMilliseconds(50), wait.Token)).State);
        }

        var before = await SnapshotAsync(acme, id);
        var random = new Random(11);
        var failures = new List<string>();
        var statuses = new Dictionary<int, int>();
        for (var i = 0; i < Requests; i++)
        {
            using var request = Malformed(random, id, i);
            var what = $"#{i} {request.Method} {request.RequestUri} ({request.Content?.Headers.ContentType?.ToString() ?? "no type"})";
            try
            {
                using var response = await fixture.Http.SendAsync(request);
                var status = (int)response.StatusCode;
                statuses[status] = statuses.GetValueOrDefault(status) + 1;
                if (status == 202 || (status == 200 && request.RequestUri!.ToString().EndsWith("/measurements", StringComparison.Ordinal)))
                {
                    output.WriteLine($"accepted: {what} {(request.Content is null ? "" : Shorten(await request.Content.ReadAsStringAsync()))}");
                }

                if (status >= 500)
                {
                    failures.Add($"{what}: {status} {Shorten(await response.Content.ReadAsStringAsync())}");
                }
            }
            catch (HttpRequestException ex)
            {
                failures.Add($"{what}: {ex.Message}");
            }
        }

        output.WriteLine($"{Requests} requests: " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key} x{s.Value}")));
        Assert.True(failures.Count == 0, $"{failures.Count} failed:\n{string.Join('\n', failures.Take(15))}");
        Assert.True(statuses.Keys.All(s => s is >= 200 and < 500), string.Join(", ", statuses.Select(s => $"{s.Key}: {s.Value}")));
        // Reads of the real deployment succeed; what is refused must be most of the rest.
        Assert.True(statuses.Where(s => s.Key >= 400).Sum(s => s.Value) >= Requests / 2,
            "too few refused: " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}")));
        var after = await SnapshotAsync(acme, id);
        Assert.Equal(before, after);
    }

    /// <summary>What is stored for the deployment: its spec, progress, buckets with versions, every bucket's measurements and the model.</summary>
    private static async Task<string> SnapshotAsync(LensHttpClient acme, string id)
    {
        var text = new StringBuilder();
        text.AppendLine(JsonSerializer.Serialize(await acme.ListDevicesAsync(), LensJson.Options));
        text.AppendLine(JsonSerializer.Serialize(await acme.ListDeploymentsAsync(Device), LensJson.Options));
        var progress = await acme.GetProfileProgressAsync(Device, id);
        text.AppendLine(JsonSerializer.Serialize(progress, LensJson.Options));
        var buckets = await acme.GetBucketsAsync(Device, id);
        text.AppendLine(JsonSerializer.Serialize(buckets, LensJson.Options));
        foreach (var bucket in buckets)
        {
            text.AppendLine(JsonSerializer.Serialize(await acme.GetBucketMeasurementsAsync(Device, id, bucket.Bucket), LensJson.Options));
        }

        text.AppendLine(await acme.GetModelJsonAsync(Device, id));
        return text.ToString();
    }

    private static HttpRequestMessage Malformed(Random random, string id, int index)
    {
        var device = random.Next(4) == 0 ? Pick(random, BadNames) : Device;
        var deployment = random.Next(4) == 0 ? Pick(random, BadNames) : id;
        var root = $"v1/devices/{device}/deployments";
        var one = $"{root}/{deployment}";
        var route = index % 21;
        var (method, path, body) = route switch
        {
            0 => (HttpMethod.Post, root, CreateBody(random)),
            1 => (HttpMethod.Get, root, null),
            2 => (HttpMethod.Get, one, null),
            3 => (HttpMethod.Post, $"{one}/profile", ProfileBody(random)),
            4 => (HttpMethod.Get, $"{one}/profile", null),
            5 => (HttpMethod.Post, $"{one}/measurements", BatchBody(random)),
            6 => (HttpMethod.Post, $"{one}/telemetry", BatchBody(random)),
            7 => (HttpMethod.Get, $"{one}/buckets", null),
            8 => (HttpMethod.Get, random.Next(2) == 0 ? $"{one}/health" : $"{one}/health/history?last={Pick(random, ["2", "-1", "x", "99999999999", ""])}", null),
            9 => (HttpMethod.Get, $"{one}/buckets/{(random.Next(2) == 0 ? Pick(random, BadNames) : "decode-9999")}/measurements", null),
            10 => (HttpMethod.Post, $"{one}/predict", PredictBody(random)),
            11 => (HttpMethod.Post, $"{one}/predict/batch", BatchPredictBody(random)),
            12 => (HttpMethod.Get, $"{one}/model", null),
            13 => (HttpMethod.Post, $"{one}/simulate", SimulateBody(random)),
            14 => (HttpMethod.Post, $"{one}/predict/static-batch", BatchPredictBody(random)),
            15 => (HttpMethod.Post, $"{one}/whatif", WhatIfBody(random)),
            16 => (HttpMethod.Post, $"{one}/advise", AdviseBody(random)),
            18 => (HttpMethod.Post, "v1/traces", OtlpBody(random)),
            19 => (HttpMethod.Get, $"{one}/traffic", null),
            17 => (random.Next(2) == 0 ? HttpMethod.Get : Pick(random, [HttpMethod.Post, HttpMethod.Put, HttpMethod.Delete]), "v1/devices",
                random.Next(2) == 0 ? null : CreateBody(random)),
            _ => (Pick(random, [HttpMethod.Put, HttpMethod.Delete, HttpMethod.Patch, HttpMethod.Head, HttpMethod.Options]),
                Pick(random, [root, one, $"{one}/predict", $"{one}/model", $"{one}/profile", "health", "openapi/v1.json"]), "{}"),
        };

        // Reads get a body now and then too, and every tenth request has no key or a wrong one.
        if (method == HttpMethod.Get && random.Next(5) == 0)
        {
            body = Pick(random, BadJson);
        }

        var request = new HttpRequestMessage(method, path);
        if (random.Next(10) != 0)
        {
            request.Headers.Add("X-Api-Key", HttpHostFixture.AcmeKey);
        }
        else if (random.Next(2) == 0)
        {
            request.Headers.Add("X-Api-Key", "wrong-" + random.Next());
        }

        if (body is not null)
        {
            var bytes = body == "<oversized>" ? Oversized(random) : Encoding.UTF8.GetBytes(body);
            request.Content = new ByteArrayContent(bytes);
            if (bytes.Length > 1024 * 1024)
            {
                // A server may refuse a big body from its headers; with 100-continue the client hears that instead of a reset.
                request.Headers.ExpectContinue = true;
            }

            var type = route == 18 && random.Next(2) == 0 ? Pick(random, ["application/x-protobuf", "application/json"]) : Pick(random, MediaTypes);
            if (route == 18 && random.Next(4) == 0)
            {
                request.Content.Headers.ContentEncoding.Add(Pick(random, ["gzip", "br", "identity", "deflate"]));
            }

            if (type.Length > 0 && (route != 3 || random.Next(5) != 0))
            {
                request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
            }
            else if (route == 3)
            {
                request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse("text/plain"); // an untyped empty profile body means "all buckets"
            }
        }

        return request;
    }

    /// <summary>OTLP export bodies: bad JSON, OTLP JSON with bad values, names and counts, random bytes, oversized.</summary>
    private static string OtlpBody(Random random) => random.Next(6) switch
    {
        0 => Pick(random, BadJson),
        1 => "<oversized>",
        2 => $$$"""{"resourceSpans":[{"resource":{"attributes":[{"key":"lens.device","value":{"stringValue":"{{{Pick(random, BadNames)}}}"}},{"key":"lens.deployment","value":{"stringValue":"x"}}]},"scopeSpans":[{"spans":[{"startTimeUnixNano":"{{{Pick(random, BadNumbers)}}}","attributes":[{"key":"gen_ai.usage.prompt_tokens","value":{"intValue":{{{Pick(random, BadNumbers)}}}}},{"key":"gen_ai.usage.completion_tokens","value":{"intValue":"5"}},{"key":"gen_ai.latency.time_to_first_token","value":{"doubleValue":{{{Pick(random, BadNumbers)}}}}},{"key":"gen_ai.latency.e2e","value":{"doubleValue":1}}]}]}]}]}""",
        3 => $$$"""{"resourceSpans":[{"scopeSpans":[{"spans":[{{{string.Join(',', Enumerable.Repeat("{}", random.Next(1, 20000)))}}}]}]}]}""",
        4 => new string((char)random.Next(1, 128), random.Next(1, 2000)),
        _ => Pick(random, ["{}", "[]", "null", "{\"resourceSpans\":null}", "{\"resourceSpans\":[{}]}", "\"x\"", "123"]),
    };

    private static string CreateBody(Random random) => random.Next(8) switch
    {
        0 => Pick(random, BadJson),
        1 => "<oversized>",
        2 => $$$"""{"name":"{{{Pick(random, ["..", "../x", "", new string('n', 500), "a|b", "ok"])}}}","model":"m","prefillBuckets":[{{{Pick(random, BadNumbers)}}}],"decodeBuckets":[16],"backend":{"kind":"reference","engineProfile":"tiny"}}""",
        3 => $$$"""{"name":"n","model":"m","prefillBuckets":[16],"decodeBuckets":[16,32],"backend":{"kind":"{{{Pick(random, ["openai", "replay", "x", ""])}}}","endpoint":"http://169.254.169.254/","apiKeyEnvironmentVariable":"AZURE_STORAGE"}}""",
        4 => $$$"""{"name":"n","model":"m","prefillBuckets":[{{{string.Join(',', Enumerable.Range(1, 5000))}}}],"decodeBuckets":[16],"backend":{"kind":"reference","engineProfile":"tiny"}}""",
        5 => $$$"""{"name":"n","model":"m","prefillBuckets":[16],"decodeBuckets":[16,32],"backend":{"kind":"reference","engineProfile":"{{{Pick(random, ["../../etc/passwd", "%2e%2e", new string('p', 100), "/tmp/x"])}}}"}}""",
        6 => $$"""{"name":"n","model":"m","prefillBuckets":[16],"decodeBuckets":[16,32],"repeats":{{Pick(random, BadNumbers)}},"batchSize":{{Pick(random, BadNumbers)}},"backend":{"kind":"reference","engineProfile":"tiny"},"maxSpan":-5}""",
        _ => Pick(random, ["{}", "[]", "null", "{\"name\":null}", "{\"backend\":null,\"name\":\"x\",\"model\":\"m\"}", "\"spec\"", "123"]),
    };

    private static string ProfileBody(Random random) => random.Next(4) switch
    {
        0 => Pick(random, BadJson),
        1 => $$"""{"bucket":"{{Pick(random, ["decode-9999", "prefill-0", "decode--1", "../x", new string('d', 1000), "decode-2147483648"])}}"}""",
        2 => $$$"""{"bucket":{{{Pick(random, BadNumbers.Where(n => n != "null").ToArray())}}}}""", // {"bucket":null}: every bucket, valid
        // Not "null": a JSON null, like no body, is a valid request to profile every bucket.
        _ => Pick(random, ["[]", "\"decode-128\"", "[{\"bucket\":\"decode-128\"}]", "<oversized>"]),
    };

    private static string BatchBody(Random random) => random.Next(6) switch
    {
        0 => Pick(random, BadJson),
        1 => "<oversized>",
        2 => $$"""{"measurements":[{"inputLength":{{Pick(random, BadNumbers)}},"outputLength":10,"e2eMs":{{Pick(random, ["-1", "0", "1e308", "NaN", "-5"])}}}]}""",
        3 => $$"""{"measurements":[{"inputLength":100,"outputLength":{{Pick(random, ["-1", "0", "2147483648", "1e400", "100000"])}},"e2eMs":10}]}""",
        4 => $$"""{"measurements":[{"inputLength":100,"outputLength":10,"e2eMs":{{Pick(random, ["-1", "0", "\"10\"", "1e400", "null"])}},"ttftMs":-1}],"id":"{{new string('i', random.Next(1, 3000))}}"}""",
        _ => Pick(random, ["{}", "[]", "null", "{\"measurements\":null}", "{\"measurements\":{}}", "{\"measurements\":[null]}", "{\"measurements\":[]}"]),
    };

    private static string PredictBody(Random random) => random.Next(4) switch
    {
        0 => Pick(random, BadJson),
        1 => $$$"""{"inputLength":{{{Pick(random, BadNumbers)}}},"outputLength":{{{Pick(random, BadNumbers)}}}}""",
        2 => $$$"""{"inputLength":{{{random.Next(-5, 5000)}}},"outputLength":{{{random.Next(-5, 5000)}}},"refined":{{{Pick(random, ["1", "\"yes\"", "null"])}}}}""",
        _ => Pick(random, ["{}", "[]", "null", "<oversized>", "{\"inputLength\":1}"]),
    };

    private static string BatchPredictBody(Random random) => random.Next(5) switch
    {
        0 => Pick(random, BadJson),
        1 => $$"""{"inputLengths":[{{Pick(random, BadNumbers)}}],"outputLengths":[{{Pick(random, BadNumbers)}}]}""",
        2 => $$"""{"inputLengths":[{{string.Join(',', Enumerable.Repeat(10, random.Next(1, 200_000)))}}],"outputLengths":[1]}""",
        3 => "LNSQ" + new string('\u0001', random.Next(0, 64)),
        _ => Pick(random, ["{}", "[]", "null", "<oversized>", "{\"inputLengths\":null,\"outputLengths\":null}"]),
    };

    private static string SimulateBody(Random random) => random.Next(7) switch
    {
        0 => Pick(random, BadJson),
        1 => "{\"workload\":{\"requestsPerSecond\":" + Pick(random, BadNumbers) + ",\"count\":" + Pick(random, BadNumbers) + "}}",
        2 => "{\"workload\":{\"requestsPerSecond\":5,\"count\":100,\"burstiness\":" + Pick(random, BadNumbers) + ",\"inputDist\":\"" +
             Pick(random, BadDists) + "\"}}",
        3 => $$"""{"arrivalMs":[{{Pick(random, BadNumbers)}}],"inputLengths":[{{Pick(random, BadNumbers)}}],"outputLengths":[1,2]}""",
        4 => $$"""{"arrivalMs":[0],"inputLengths":[10],"outputLengths":[10],"replicas":{{Pick(random, BadNumbers)}},"maxNumSeqs":{{Pick(random, BadNumbers)}}}""",
        5 => """{"arrivalMs":[0],"inputLengths":[10],"outputLengths":[10],"workload":{"requestsPerSecond":1,"count":1},"sloTtftMs":-1}""",
        _ => Pick(random, ["{}", "[]", "null", "<oversized>", "{\"workload\":null}"]),
    };

    private static string WhatIfBody(Random random) => random.Next(4) switch
    {
        0 => Pick(random, BadJson),
        1 => "{\"prefillBuckets\":[" + Pick(random, BadNumbers) + "],\"decodeBuckets\":[" + Pick(random, BadNumbers) + "]}",
        2 => Pick(random, ["{\"prefillBuckets\":[64,32],\"decodeBuckets\":[128]}", "{\"prefillBuckets\":[],\"decodeBuckets\":[]}",
            "{\"prefillBuckets\":[128],\"decodeBuckets\":[1000000000]}", "{\"prefillBuckets\":[128],\"decodeBuckets\":[256],\"batchBuckets\":[0]}"]),
        _ => Pick(random, ["{}", "[]", "null", "<oversized>"]),
    };

    private static string AdviseBody(Random random) => random.Next(4) switch
    {
        0 => Pick(random, BadJson),
        1 => "{\"workload\":{\"requestsPerSecond\":" + Pick(random, BadNumbers) + ",\"count\":" + Pick(random, BadNumbers) + "},\"maxBuckets\":" +
             Pick(random, BadNumbers) + "}",
        2 => "{\"arrivalMs\":[0],\"inputLengths\":[10],\"outputLengths\":[10],\"granularity\":" + Pick(random, BadNumbers) + ",\"goal\":" +
             Pick(random, BadNumbers) + ",\"targetRate\":" + Pick(random, BadNumbers) + "}",
        _ => Pick(random, ["{}", "[]", "null", "<oversized>"]),
    };

    private static readonly string[] BadDists = ["zipf:1", "uniform:9-1", "fixed:0", "normal:1e308,1", "lognormal:-1,2", "uniform:", ":", "fixed:1,2,3"];

    /// <summary>A body past the server's 30 MB limit, now and then; otherwise a few megabytes of JSON digits.</summary>
    private static byte[] Oversized(Random random)
    {
        var size = random.Next(20) == 0 ? 31 * 1024 * 1024 : random.Next(1, 4) * 1024 * 1024;
        var bytes = new byte[size];
        bytes.AsSpan().Fill((byte)'1');
        bytes[0] = (byte)'[';
        return bytes;
    }

    private static T Pick<T>(Random random, T[] items) => items[random.Next(items.Length)];

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..300];
}
