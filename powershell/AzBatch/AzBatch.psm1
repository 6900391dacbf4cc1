# AzBatch: Invoke-AzBatchRequest, a thin skin over the AzBatch native library.
# Parameter binding, token acquisition, JSON in and out, progress and output
# live here; batching, retries, paging, dependencies and HTTP live in the core.
Set-StrictMode -Version 3.0

$script:Info = $null

function Initialize-AzBatchNative {
    # Compiles the interop class once per session (C# 5 on Windows PowerShell 5.1)
    # and loads the native library from runtimes/<os>-<arch>/native. Returns what
    # the library knows (limits, clouds): the module repeats none of it.
    if (-not ('AzBatch.Batch' -as [type])) {
        Add-Type -Path (Join-Path $PSScriptRoot 'AzBatchNative.cs')
    }
    [void][AzBatch.NativeLoader]::EnsureLoaded($PSScriptRoot, $env:AZBATCH_NATIVE_PATH)
    if ($null -eq $script:Info) { $script:Info = [AzBatch.Batch]::Info() | ConvertFrom-Json }
    $script:Info
}

function Assert-AzBatchRange([string]$Name, [int]$Value, [int]$Min, [int]$Max) {
    # The library's limits, said in the module's own parameter names.
    if ($Value -lt $Min -or $Value -gt $Max) {
        throw ("-{0} must be between {1} and {2} (got {3})." -f $Name, $Min, $Max, $Value)
    }
}

function ConvertFrom-AzBatchSecureString([System.Security.SecureString]$Secure) {
    (New-Object System.Net.NetworkCredential('', $Secure)).Password
}

function Get-AzBatchAccessToken {
    # -AccessToken, else an Az PowerShell context, else the Azure CLI.
    param([string]$Resource, [object]$AccessToken)
    if ($null -ne $AccessToken) {
        if ($AccessToken -is [System.Security.SecureString]) { return ConvertFrom-AzBatchSecureString $AccessToken }
        return [string]$AccessToken
    }
    $tried = @()
    if (Get-Command -Name Get-AzAccessToken -ErrorAction SilentlyContinue) {
        try {
            $t = Get-AzAccessToken -ResourceUrl $Resource -ErrorAction Stop
            # Newer Az returns the token as a SecureString, older as a string.
            if ($t.Token -is [System.Security.SecureString]) { return ConvertFrom-AzBatchSecureString $t.Token }
            return [string]$t.Token
        } catch {
            $tried += "Get-AzAccessToken: $($_.Exception.Message)"
        }
    } else {
        $tried += 'Get-AzAccessToken: the Az.Accounts module is not available'
    }
    if (Get-Command -Name az -ErrorAction SilentlyContinue) {
        $json = & az account get-access-token --resource $Resource --output json 2>$null
        if ($LASTEXITCODE -eq 0 -and $json) { return (($json -join "`n") | ConvertFrom-Json).accessToken }
        $tried += "az account get-access-token: exit code $LASTEXITCODE"
    } else {
        $tried += 'az: the Azure CLI is not installed'
    }
    throw ("No access token for {0}. Pass -AccessToken, or sign in with Connect-AzAccount (Az PowerShell) or 'az login' (Azure CLI). Tried: {1}" -f $Resource, ($tried -join '; '))
}

function Get-AzBatchProperty($InputObject, [string[]]$Names) {
    # A property of a hashtable or an object, by any of its names, case-insensitively.
    foreach ($name in $Names) {
        if ($InputObject -is [System.Collections.IDictionary]) {
            foreach ($key in $InputObject.Keys) { if ([string]$key -eq $name) { return $InputObject[$key] } }
        } elseif ($InputObject.PSObject.Properties[$name]) {
            return $InputObject.PSObject.Properties[$name].Value
        }
    }
    return $null
}

function ConvertTo-AzBatchRequest($InputObject) {
    # A plain string is a GET of that URL; hashtables and objects give Url,
    # Method, Name/Id, Body, Headers, DependsOn and BodyEncoding.
    if ($InputObject -is [string]) { return [ordered]@{ url = $InputObject; method = 'GET' } }
    $r = [ordered]@{}
    $url = Get-AzBatchProperty $InputObject @('Url', 'Uri')
    if ($null -ne $url) { $r.url = [string]$url }
    $method = Get-AzBatchProperty $InputObject @('Method', 'HttpMethod')
    if ($null -ne $method) { $r.method = ([string]$method).ToUpperInvariant() } else { $r.method = 'GET' }
    $id = Get-AzBatchProperty $InputObject @('Id', 'Name')
    if ($null -ne $id) { $r.id = [string]$id }
    $body = Get-AzBatchProperty $InputObject @('Body', 'Content')
    if ($null -ne $body) {
        # A JSON text body is sent as the JSON it holds; anything else as given.
        if ($body -is [string] -and $body.TrimStart().StartsWith('{')) { $body = $body | ConvertFrom-Json }
        $r.body = $body
    }
    $headers = Get-AzBatchProperty $InputObject @('Headers')
    if ($null -ne $headers) { $r.headers = $headers }
    $dependsOn = Get-AzBatchProperty $InputObject @('DependsOn')
    if ($null -ne $dependsOn) { $r.dependsOn = @($dependsOn | ForEach-Object { [string]$_ }) }
    $encoding = Get-AzBatchProperty $InputObject @('BodyEncoding')
    if ($null -ne $encoding) { $r.bodyEncoding = [string]$encoding }
    return $r
}

function ConvertTo-AzBatchResponse([string]$Json) {
    $item = $Json | ConvertFrom-Json
    [pscustomobject]@{
        PSTypeName   = 'AzBatch.Response'
        Name         = $item.id
        Status       = [int]$item.status
        Succeeded    = ($item.status -ge 200 -and $item.status -lt 300 -and $null -eq $item.error)
        Body         = $item.body
        Headers      = $item.headers
        Attempts     = [int]$item.attempts
        Pages        = [int]$item.pages
        Error        = $item.error
        BodyEncoding = $(if ($item.PSObject.Properties['bodyEncoding']) { $item.bodyEncoding } else { $null })
    }
}

function New-AzBatchErrorRecord($Response, [string]$Json) {
    $category = switch ($Response.Status) {
        0 { [System.Management.Automation.ErrorCategory]::OperationStopped }
        401 { [System.Management.Automation.ErrorCategory]::AuthenticationError }
        403 { [System.Management.Automation.ErrorCategory]::PermissionDenied }
        404 { [System.Management.Automation.ErrorCategory]::ObjectNotFound }
        424 { [System.Management.Automation.ErrorCategory]::NotSpecified }
        429 { [System.Management.Automation.ErrorCategory]::LimitsExceeded }
        default { [System.Management.Automation.ErrorCategory]::InvalidOperation }
    }
    $code = ''; $message = ''
    if ($Response.Error) { $code = $Response.Error.code; $message = $Response.Error.message }
    $text = "Request '{0}' failed with status {1}: {2} {3}" -f $Response.Name, $Response.Status, $code, $message
    $record = New-Object System.Management.Automation.ErrorRecord (
        (New-Object System.Exception $text), "AzBatch.RequestFailed.$code", $category, $Response)
    # The whole response (body included) travels with the error.
    $record.ErrorDetails = New-Object System.Management.Automation.ErrorDetails $Json
    $record
}

function Invoke-AzBatchRequest {
    <#
    .SYNOPSIS
    Sends any number of Azure Resource Manager or Microsoft Graph requests through their batch endpoints.

    .DESCRIPTION
    Collects requests from the pipeline or -Request, sends them in batches (ARM: POST /batch; Graph:
    POST /v1.0/$batch) with several batches in flight, retries throttled and failed items after their
    Retry-After, polls asynchronous batches, follows nextLink pages with -FollowNextLink, runs requests after
    the requests they depend on, and writes one AzBatch.Response object per request as soon as it finishes.

    A request is a string (a GET of that URL), or a hashtable or object with Url and optionally Method
    (default GET), Name or Id, Body (objects become JSON), Headers, DependsOn (ids of requests that must
    succeed first) and BodyEncoding ('base64' for non-JSON Graph bodies). Urls, header values and body
    strings may read the answers of requests named in DependsOn: {{id.body.path}}, {{id.status}},
    {{id.headers.Name}}.

    Failed requests are written as objects too (Succeeded is $false) and also as non-terminating errors
    whose ErrorDetails hold the whole response, so -ErrorAction and -ErrorVariable work. To keep only the
    successes: Invoke-AzBatchRequest ... -ErrorAction SilentlyContinue | Where-Object Succeeded

    GET requests always run; PUT, PATCH, POST and DELETE go through ShouldProcess, so -WhatIf lists them
    and sends nothing (requests that depend on a skipped write are skipped too).

    .PARAMETER Request
    The requests: strings, hashtables or objects (see the description). Also taken from the pipeline.

    .PARAMETER Url
    A URL template for -ForEachSubscription, with {subscriptionId} where each subscription's id goes.

    .PARAMETER ForEachSubscription
    Expands -Url over every subscription the token can see (listed through AzBatch, all pages followed).

    .PARAMETER Method
    Method for -Url requests. Default GET.

    .PARAMETER Body
    Body for -Url requests.

    .PARAMETER Api
    Arm or Graph. When omitted it is inferred from the first absolute URL's host, else Arm.

    .PARAMETER Environment
    AzureCloud (default), AzureUSGovernment or AzureChinaCloud: picks the ARM and Graph hosts.

    .PARAMETER Endpoint
    Overrides the endpoint, e.g. http://127.0.0.1:PORT for the local emulator.

    .PARAMETER AccessToken
    The bearer token, as a SecureString or a string. When omitted the token comes from the Az PowerShell
    context (Get-AzAccessToken), else from the Azure CLI (az account get-access-token).

    .PARAMETER BatchSize
    Items per batch: 1 to 500 for ARM (default 20), 1 to 20 for Graph (default 20).

    .PARAMETER ThrottleLimit
    Batches in flight at once. Default 8.

    .PARAMETER MaxAttempts
    Sends per request (per page) before its last answer is final. Default 6.

    .PARAMETER FollowNextLink
    Fetches every nextLink (@odata.nextLink) page and merges the value arrays into one response.

    .PARAMETER TimeoutSec
    Deadline of the whole run in seconds; unfinished requests end with error code Timeout. Default 3600.

    .PARAMETER Raw
    Writes each result as its JSON text instead of an object.

    .EXAMPLE
    Invoke-AzBatchRequest -ForEachSubscription -Url '/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01' |
        ForEach-Object { $_.Body.value } | Select-Object -ExpandProperty properties

    PIM eligibility in every subscription the token can see.

    .EXAMPLE
    Invoke-AzBatchRequest -ForEachSubscription -FollowNextLink -Url '/subscriptions/{subscriptionId}/providers/Microsoft.Batch/batchAccounts?api-version=2024-07-01' |
        ForEach-Object { $_.Body.value } | Select-Object name, location, @{ n = 'endpoint'; e = { $_.properties.accountEndpoint } }

    Batch accounts across all subscriptions, every page followed.

    .EXAMPLE
    $query = @{ type = 'ActualCost'; timeframe = 'MonthToDate'; dataset = @{ granularity = 'None'; aggregation = @{ totalCost = @{ name = 'Cost'; function = 'Sum' } } } }
    Invoke-AzBatchRequest -ForEachSubscription -Method POST -Body $query -Url '/subscriptions/{subscriptionId}/providers/Microsoft.CostManagement/query?api-version=2023-03-01' -Confirm:$false

    A cost query per subscription.

    .EXAMPLE
    $user = '{{newUser.body.id}}'
    @(
        @{ Id = 'newUser'; Method = 'POST'; Url = '/users'; Body = @{ displayName = 'Ada Lovelace'; userPrincipalName = 'ada@contoso.com'; accountEnabled = $true; mailNickname = 'ada'; passwordProfile = @{ password = $pw } } }
        @{ Id = 'license'; Method = 'POST'; Url = "/users/$user/assignLicense"; DependsOn = 'newUser'; Body = @{ addLicenses = @(@{ skuId = $skuId }); removeLicenses = @() } }
        @{ Id = 'group'; Method = 'POST'; Url = "/groups/$groupId/members/`$ref"; DependsOn = 'newUser'; Body = @{ '@odata.id' = "https://graph.microsoft.com/v1.0/directoryObjects/$user" } }
        @{ Id = 'welcome'; Method = 'POST'; Url = "/users/$user/events"; DependsOn = 'newUser'; Body = @{ subject = 'Welcome!'; start = @{ dateTime = '2026-12-01T09:00'; timeZone = 'UTC' }; end = @{ dateTime = '2026-12-01T09:30'; timeZone = 'UTC' } } }
    ) | Invoke-AzBatchRequest -Api Graph -Confirm:$false

    Onboards a user on Graph: creates it, then uses its new id to license it, add it to a group and book a welcome meeting.

    .EXAMPLE
    $groupIds | ForEach-Object { @{ Method = 'POST'; Url = "/groups/$_/members/`$ref"; Body = @{ '@odata.id' = "https://graph.microsoft.com/v1.0/directoryObjects/$userId" } } } |
        Invoke-AzBatchRequest -Api Graph -Confirm:$false

    Adds one user to many groups.

    .EXAMPLE
    Import-Csv users.csv | ForEach-Object { @{ Id = $_.UserPrincipalName; Method = 'PATCH'; Url = "/users/$($_.UserPrincipalName)"; Body = @{ department = $_.Department } } } |
        Invoke-AzBatchRequest -Api Graph -Confirm:$false -ErrorVariable failed | Out-Null
    $failed | ForEach-Object { $_.TargetObject.Name }

    Bulk-updates users and lists the ones that failed.
    #>
    [CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium', DefaultParameterSetName = 'Request')]
    [OutputType('AzBatch.Response')]
    param(
        [Parameter(ParameterSetName = 'Request', Mandatory = $true, ValueFromPipeline = $true, Position = 0)]
        [object[]]$Request,

        [Parameter(ParameterSetName = 'Subscription', Mandatory = $true)]
        [string]$Url,

        [Parameter(ParameterSetName = 'Subscription', Mandatory = $true)]
        [switch]$ForEachSubscription,

        [Parameter(ParameterSetName = 'Subscription')]
        [ValidateSet('GET', 'PUT', 'PATCH', 'POST', 'DELETE', 'HEAD')]
        [string]$Method = 'GET',

        [Parameter(ParameterSetName = 'Subscription')]
        [object]$Body,

        [ValidateSet('Arm', 'Graph')]
        [string]$Api,

        [ArgumentCompleter({ 'AzureCloud', 'AzureUSGovernment', 'AzureChinaCloud' })]
        [string]$Environment = 'AzureCloud',

        [uri]$Endpoint,

        [object]$AccessToken,

        [int]$BatchSize,

        [int]$ThrottleLimit,

        [int]$MaxAttempts,

        [switch]$FollowNextLink,

        [int]$TimeoutSec,

        [switch]$Raw
    )
    begin {
        $collected = New-Object System.Collections.Generic.List[object]
    }
    process {
        if ($PSCmdlet.ParameterSetName -eq 'Request') {
            foreach ($r in $Request) { if ($null -ne $r) { $collected.Add((ConvertTo-AzBatchRequest $r)) } }
        }
    }
    end {
        $info = Initialize-AzBatchNative
        $limits = $info.limits
        if ($PSBoundParameters.ContainsKey('ThrottleLimit')) { Assert-AzBatchRange 'ThrottleLimit' $ThrottleLimit $limits.minConcurrency $limits.maxConcurrency }
        if ($PSBoundParameters.ContainsKey('MaxAttempts')) { Assert-AzBatchRange 'MaxAttempts' $MaxAttempts $limits.minAttempts $limits.maxAttempts }
        if ($PSBoundParameters.ContainsKey('TimeoutSec')) { Assert-AzBatchRange 'TimeoutSec' $TimeoutSec 1 $limits.maxTimeoutSeconds }
        $cloud = @($info.clouds | Where-Object { $_.name -eq $Environment })
        if ($cloud.Count -ne 1) { throw ("-Environment must be one of {0} (got '{1}')." -f (($info.clouds | ForEach-Object { $_.name }) -join ', '), $Environment) }
        $cloud = $cloud[0]
        if (-not $Api) {
            $Api = 'Arm'
            $first = $collected | Where-Object { $_.Contains('url') -and $_.url -match '^https?://' } | Select-Object -First 1
            if ($first) {
                $hostName = ([uri]$first.url).Host
                foreach ($c in $info.clouds) { if (([uri]$c.graph).Host -eq $hostName) { $Api = 'Graph' } }
            }
            Write-Verbose "API: $Api"
        }
        if ($PSBoundParameters.ContainsKey('BatchSize')) {
            Assert-AzBatchRange 'BatchSize' $BatchSize 1 $(if ($Api -eq 'Graph') { $limits.graphMaxBatchSize } else { $limits.armMaxBatchSize })
        }
        $resource = $(if ($Api -eq 'Graph') { $cloud.graphResource } else { $cloud.armResource })
        $target = $(if ($Endpoint) { $Endpoint.AbsoluteUri.TrimEnd('/') } else { $(if ($Api -eq 'Graph') { $cloud.graph } else { $cloud.arm }) })
        $token = Get-AzBatchAccessToken -Resource $resource -AccessToken $AccessToken

        $options = [ordered]@{
            api            = $Api.ToLowerInvariant()
            cloud          = $cloud.name
            endpoint       = $target
            token          = $token
            followNextLink = [bool]$FollowNextLink
        }
        if ($PSBoundParameters.ContainsKey('ThrottleLimit')) { $options.concurrency = $ThrottleLimit }
        if ($PSBoundParameters.ContainsKey('MaxAttempts')) { $options.maxAttempts = $MaxAttempts }
        if ($PSBoundParameters.ContainsKey('TimeoutSec')) { $options.timeoutSeconds = $TimeoutSec }
        if ($BatchSize) { $options.batchSize = $BatchSize }
        $optionsJson = $options | ConvertTo-Json -Compress -Depth 4
        $token = $null

        if ($ForEachSubscription) {
            # The library lists the subscriptions in the same run (so Ctrl+C stops
            # it too) and sends the request once in each.
            $r = [ordered]@{ method = $Method; url = $Url; forEachSubscription = $true }
            if ($PSBoundParameters.ContainsKey('Body')) { $r.body = $Body }
            $collected.Add($r)
        }

        # Writes go through ShouldProcess; a skipped write skips what depends on it.
        $skipped = New-Object 'System.Collections.Generic.HashSet[string]' ([StringComparer]::OrdinalIgnoreCase)
        $send = New-Object System.Collections.Generic.List[object]
        foreach ($r in $collected) {
            $isRead = @('GET', 'HEAD') -contains $r.method
            if (-not $isRead -and -not $PSCmdlet.ShouldProcess(('{0} {1}' -f $r.method, $r.url), 'Send')) {
                if ($r.Contains('id')) { [void]$skipped.Add($r.id) }
                continue
            }
            $send.Add($r)
        }
        do {
            $before = $send.Count
            $keep = New-Object System.Collections.Generic.List[object]
            foreach ($r in $send) {
                $blocked = $r.Contains('dependsOn') -and @($r.dependsOn | Where-Object { $skipped.Contains($_) }).Count -gt 0
                if ($blocked) {
                    if ($r.Contains('id')) { [void]$skipped.Add($r.id) }
                    Write-Verbose ("Skipping {0} {1}: it depends on a request that was not sent" -f $r.method, $r.url)
                } else { $keep.Add($r) }
            }
            $send = $keep
        } while ($send.Count -ne $before)
        if ($send.Count -eq 0) { return }

        try { $batch = New-Object AzBatch.Batch $optionsJson }
        catch {
            $e = $_.Exception
            while ($e.InnerException) { $e = $e.InnerException }
            throw ("AzBatch refused the options: {0}" -f $e.Message)
        }
        $finished = $false
        try {
            $index = 0
            foreach ($r in $send) {
                try { $batch.Add(($r | ConvertTo-Json -Compress -Depth 100)) }
                catch {
                    # .NET exceptions arrive wrapped in MethodInvocationException: show AzBatch's own words.
                    $e = $_.Exception
                    while ($e.InnerException) { $e = $e.InnerException }
                    throw ("Request {0} was refused: {1}" -f $index, $e.Message)
                }
                $index++
            }
            $batch.Start()
            $lastBatches = 0
            $item = $null
            while ($true) {
                $status = $batch.Next(250, [ref]$item)
                if ($status -eq [AzBatch.Status]::Done) { break }
                $p = $batch.GetProgress()
                while ($lastBatches -lt $p.Batches) {
                    $lastBatches++
                    Write-Verbose ("Batch {0} sent; {1}/{2} done, {3} in flight, {4} retries, {5} throttled" -f $lastBatches, $p.Completed, $p.Total, $p.InFlight, $p.Retries, $p.Throttled)
                }
                # The total grows while -ForEachSubscription lists the subscriptions.
                $percent = [int][math]::Min(100, 100 * $p.Completed / [math]::Max(1, $p.Total))
                Write-Progress -Activity 'AzBatch' -Status ("{0}/{1} done, {2} retries, {3} throttled" -f $p.Completed, $p.Total, $p.Retries, $p.Throttled) -PercentComplete $percent
                if ($status -ne [AzBatch.Status]::Ok) { continue }
                Write-Debug $item
                $response = ConvertTo-AzBatchResponse $item
                if (-not $response.Succeeded) { $PSCmdlet.WriteError((New-AzBatchErrorRecord $response $item)) }
                if ($Raw) { $item } else { $response }
            }
            $finished = $true
            Write-Progress -Activity 'AzBatch' -Completed
        } finally {
            # Ctrl+C stops the pipeline here: cancel the work in flight, then free.
            if (-not $finished) { $batch.Cancel() }
            $batch.Dispose()
        }
    }
}

Export-ModuleMember -Function Invoke-AzBatchRequest
