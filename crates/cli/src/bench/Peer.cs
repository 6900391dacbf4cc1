// The Microsoft Graph .NET SDK (6.10.0) doing the benchmark's Graph workloads
// the way its documentation shows: every request added to a
// BatchRequestContentCollection (which splits them into batches of 20, sent
// one after another), then the failed ones sent again with
// NewBatchWithFailedRequests until none fails or `rounds` runs out. The SDK's
// RetryHandler retries a throttled batch envelope; items throttled inside a
// batch are the caller's, as here.
//
// Built and run by `azbatch bench` (crates/cli/src/bench/sdk.rs).
// usage: dotnet Peer.dll <graph root, e.g. http://127.0.0.1:PORT/v1.0> <token> <file of URLs> PATCH|GET [rounds]
// (PATCH: each /users/{id} is updated; GET: each /users/{id}/events is read)
// prints: <seconds> <requests> <failed>
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Graph;
using Microsoft.Graph.Models;
using Microsoft.Kiota.Abstractions;
using Microsoft.Kiota.Abstractions.Authentication;

sealed class StaticToken : IAuthenticationProvider
{
    private readonly string token;
    public StaticToken(string token) { this.token = token; }

    // Kiota's bearer providers refuse plain http, which the local emulator speaks.
    public Task AuthenticateRequestAsync(RequestInformation request, Dictionary<string, object>? context = null, CancellationToken cancellationToken = default)
    {
        request.Headers.Add("Authorization", "Bearer " + token);
        return Task.CompletedTask;
    }
}

static class Peer
{
    static async Task<int> Main(string[] args)
    {
        if (args.Length < 4)
        {
            Console.Error.WriteLine("usage: Peer <graph root> <token> <file of URLs> PATCH|GET [rounds]");
            return 2;
        }
        string root = args[0], token = args[1], method = args[3];
        string[] urls = File.ReadAllLines(args[2]).Where(l => l.Length > 0).ToArray();
        int rounds = args.Length > 4 ? int.Parse(args[4]) : 5;
        var client = new GraphServiceClient(new HttpClient(), new StaticToken(token), root);
        var sw = Stopwatch.StartNew();
        var batch = new BatchRequestContentCollection(client);
        for (int i = 0; i < urls.Length; i++)
        {
            string id = urls[i].Split('/')[2].Split('?')[0];
            var request = method == "PATCH"
                ? client.Users[id].ToPatchRequestInformation(new User { JobTitle = "Engineer " + i })
                : client.Users[id].Events.ToGetRequestInformation();
            await batch.AddBatchRequestStepAsync(request);
        }
        var response = await client.Batch.PostAsync(batch);
        var statuses = await response.GetResponsesStatusCodesAsync();
        // Each round sends only the failures of the one before (under new ids).
        for (int round = 1; round < rounds && statuses.Values.Any(s => (int)s >= 300); round++)
        {
            batch = batch.NewBatchWithFailedRequests(statuses);
            response = await client.Batch.PostAsync(batch);
            statuses = await response.GetResponsesStatusCodesAsync();
        }
        int failed = statuses.Values.Count(s => (int)s >= 300);
        Console.WriteLine($"{sw.Elapsed.TotalSeconds:F3} {urls.Length} {failed}");
        return 0;
    }
}
