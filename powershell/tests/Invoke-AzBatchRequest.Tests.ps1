# Pester 5 tests of the AzBatch module against the AzBatch emulator, in real
# PowerShell. Run by scripts/test.sh through Run-Pester.ps1. Expects
# AZBATCH_MODULE (the module folder scripts/build-module.sh builds) and
# AZBATCH_EMULATOR (the emulator binary); both default to this repository's
# builds.

BeforeDiscovery {
    # What -Skip reads is known at discovery: tests that need Linux tools, a
    # Unix shell, or PowerShell 7 say so (the hosted runners also run 5.1,
    # Windows and macOS; on this project's own machines nothing is skipped).
    $OnLinux = [System.Runtime.InteropServices.RuntimeInformation]::IsOSPlatform([System.Runtime.InteropServices.OSPlatform]::Linux)
    $OnWindows = [System.Runtime.InteropServices.RuntimeInformation]::IsOSPlatform([System.Runtime.InteropServices.OSPlatform]::Windows)
    $Core = $PSVersionTable.PSEdition -eq 'Core'
}

BeforeAll {
    $script:Repo = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $script:ModuleDir = $env:AZBATCH_MODULE
    if (-not $ModuleDir) { $script:ModuleDir = Join-Path $Repo 'target/module/AzBatch' }
    $script:EmulatorBin = $env:AZBATCH_EMULATOR
    if (-not $EmulatorBin) { $script:EmulatorBin = Join-Path $Repo 'target/debug/azbatch-emulator' }
    # A PowerShell like the one running these tests, for child processes:
    # scripts/pwsh on Unix (the bundled pwsh runs under a dotnet host), else
    # this process's own executable (pwsh.exe, or powershell.exe 5.1).
    $script:Pwsh = Join-Path $Repo 'scripts/pwsh'
    if (-not (Test-Path $Pwsh) -or [System.IO.Path]::DirectorySeparatorChar -eq '\') { $script:Pwsh = (Get-Process -Id $PID).Path }
    $script:Token = 'pester-token-7c1e'

    function script:Start-Emulator([string[]]$Arguments) {
        $out = New-TemporaryFile
        $p = Start-Process -FilePath $EmulatorBin -ArgumentList ($Arguments + @('--token', $Token)) `
            -RedirectStandardOutput $out.FullName -PassThru -NoNewWindow
        $deadline = (Get-Date).AddSeconds(10)
        while (-not (Get-Content $out.FullName -ErrorAction SilentlyContinue) -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 50 }
        [pscustomobject]@{ Process = $p; Url = (Get-Content $out.FullName | Select-Object -First 1).Trim() }
    }

    # Runs $Script in a PowerShell of its own (the module imported, $Endpoint and
    # $Token set), as a host would: returns the PowerShell object, not started.
    function script:New-Shell([string]$Script, [string]$Endpoint) {
        $ps = [PowerShell]::Create()
        [void]$ps.AddScript("Import-Module '$ModuleDir/AzBatch.psd1'; `$Endpoint = '$Endpoint'; `$Token = '$Token'").AddStatement().AddScript($Script)
        $ps
    }

    $script:Emu = Start-Emulator @('--subscriptions', '6')
    $script:Endpoint = $Emu.Url
    Import-Module (Join-Path $ModuleDir 'AzBatch.psd1') -Force
    $script:Common = @{ Endpoint = $Endpoint; AccessToken = $Token; Confirm = $false }
    $script:Sub0 = '00000000-0000-4000-8000-000000000000'
    $script:User0 = '00000000-0000-4000-9000-000000000000'
    $script:User1 = '00000001-0000-4000-9000-000000000001'
    $script:Group0 = '00000000-0000-4000-a000-000000000000'
    $script:SubUrl = "/subscriptions/$Sub0`?api-version=2022-12-01"
}

AfterAll {
    if ($script:Emu) { Stop-Process -Id $Emu.Process.Id -ErrorAction SilentlyContinue }
    Remove-Module AzBatch -ErrorAction SilentlyContinue
}

Describe 'Requests from the pipeline (ARM)' {
    It 'lists PIM eligibility in every subscription' {
        $url = '/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01'
        $results = @(Invoke-AzBatchRequest -ForEachSubscription -Url $url @Common)
        $results.Count | Should -Be 6
        $results | ForEach-Object { $_.Status | Should -Be 200 }
        $results[0].PSObject.TypeNames | Should -Contain 'AzBatch.Response'
        ($results.Name | Sort-Object) | Should -Be (0..5 | ForEach-Object { '00000000-0000-4000-8000-{0:D12}' -f $_ })
        @($results | ForEach-Object { $_.Body.value }).Count | Should -BeGreaterThan 5
        $results | ForEach-Object {
            $_.SubscriptionId | Should -Be $_.Name
            $_.SubscriptionName | Should -Be ('Subscription {0}' -f [int]$_.Name.Substring(24))
            $_.TenantId | Should -Be '72f988bf-0000-4000-8000-000000000000'
        }
    }

    It 'takes strings and hashtables and follows next links' {
        $results = @(
            $SubUrl
            @{ Name = 'accounts'; Url = "/subscriptions/00000000-0000-4000-8000-000000000005/providers/Microsoft.Batch/batchAccounts?api-version=2024-07-01" }
        ) | Invoke-AzBatchRequest -FollowNextLink @Common
        $results.Count | Should -Be 2
        $accounts = $results | Where-Object Name -eq 'accounts'
        @($accounts.Body.value).Count | Should -Be 5
        $accounts.Pages | Should -Be 3
    }

    It 'takes PSCustomObjects' {
        $r = [pscustomobject]@{ Id = 'obj'; Method = 'GET'; Url = $SubUrl } | Invoke-AzBatchRequest @Common
        ($r.Name, $r.Status) | Should -Be @('obj', 200)
    }

    It 'takes requests as JSON text' {
        $json = '{"id":"asjson","method":"GET","url":"' + $SubUrl + '"}'
        $r = $json | Invoke-AzBatchRequest @Common
        ($r.Name, $r.Status) | Should -Be @('asjson', 200)
    }

    It 'refuses an unknown key, naming it' {
        { @{ Url = $SubUrl; Boddy = @{} } | Invoke-AzBatchRequest @Common } | Should -Throw "*unknown key 'Boddy'*"
    }

    It 'refuses a request for another host, naming it' {
        { Invoke-AzBatchRequest -Request @{ Id = 'evil'; Url = 'https://evil.example/x' } @Common } | Should -Throw '*evil*url*'
    }

    It 'writes JSON text with -Raw' {
        $raw = Invoke-AzBatchRequest -Request $SubUrl -Raw @Common
        $raw | Should -BeOfType [string]
        ($raw | ConvertFrom-Json).status | Should -Be 200
    }

    It 'sends each subscription a JSON-text -Body as JSON' {
        $query = '{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"granularity":"None"}}'
        $results = @(Invoke-AzBatchRequest -ForEachSubscription -Method POST -Body $query -Url '/subscriptions/{subscriptionId}/providers/Microsoft.CostManagement/query?api-version=2023-03-01' @Common)
        $results.Count | Should -Be 6
        $results | ForEach-Object { $_.Status | Should -Be 200 }
    }
}

Describe "Invoke-AzRestMethod's request shapes" {
    It 'takes Path, Method and Payload as Invoke-AzRestMethod does' {
        $reqs = @(
            @{ Path = "/subscriptions/$Sub0/resourcegroups/rg-peer?api-version=2021-04-01"; Method = 'PUT'; Payload = '{"location":"westeurope","tags":{"from":"Invoke-AzRestMethod"}}' }
            [pscustomobject]@{ Path = "/subscriptions/$Sub0/resourcegroups/rg-peer?api-version=2021-04-01"; Method = 'GET' }
        )
        $put = $reqs[0] | Invoke-AzBatchRequest @Common
        $put.Status | Should -Be 201
        $put.Body.tags.from | Should -Be 'Invoke-AzRestMethod'
        $get = $reqs[1] | Invoke-AzBatchRequest @Common
        ($get.Status, $get.Body.location) | Should -Be @(200, 'westeurope')
    }

    It 'builds the path from its parts, Name beside ResourceType being the resource' {
        $sub5 = '00000000-0000-4000-8000-000000000005'
        $r = @{ SubscriptionId = $sub5; ResourceProviderName = 'Microsoft.Batch'; ResourceType = 'batchAccounts'; ApiVersion = '2024-07-01' } |
            Invoke-AzBatchRequest @Common
        $r.Status | Should -Be 200
        @($r.Body.value).Count | Should -BeGreaterThan 0
        $r.Body.value[0].id | Should -BeLike "/subscriptions/$sub5/resourceGroups/*/providers/Microsoft.Batch/batchAccounts/*"
        $csv = @"
SubscriptionId,ResourceGroupName,ApiVersion,Id
$Sub0,rg-peer,2021-04-01,fromcsv
"@ | ConvertFrom-Csv
        $put = @{ Path = "/subscriptions/$Sub0/resourcegroups/rg-peer?api-version=2021-04-01"; Method = 'PUT'; Payload = '{"location":"westeurope"}' } | Invoke-AzBatchRequest @Common
        $put.Status | Should -BeIn @(200, 201)
        $got = $csv | Invoke-AzBatchRequest @Common
        ($got.Name, $got.Status, $got.Body.id) | Should -Be @('fromcsv', 200, "/subscriptions/$Sub0/resourceGroups/rg-peer")
        # Name is the resource's beside ResourceType: the write is shown, not sent.
        $vm = @{ SubscriptionId = $Sub0; ResourceGroupName = 'g'; ResourceProviderName = 'Microsoft.Compute'; ResourceType = 'virtualMachines/extensions'; Name = 'vm1'; ApiVersion = '2024-03-01'; Method = 'PUT'; Payload = '{}' } |
            Invoke-AzBatchRequest -WhatIf @Common
        $vm | Should -BeNullOrEmpty
    }

    It 'says which field is wrong in a shape it cannot read' {
        { @{ Path = "/subscriptions/$Sub0/resourcegroups/x?api-version=2021-04-01"; Method = 'PUT'; Payload = '{oops' } | Invoke-AzBatchRequest @Common } |
            Should -Throw '*payload*JSON*'
        { @{ SubscriptionId = $Sub0; ResourceType = @('a', 'b', 'c'); Name = 'x'; ApiVersion = '1' } | Invoke-AzBatchRequest @Common } |
            Should -Throw '*resourceType*3 types and 1 names*'
    }
}

Describe "Invoke-MgGraphRequest's request shapes" {
    It 'takes Uri as Invoke-MgGraphRequest does: v1.0/..., /beta/..., the absolute URL' {
        $reqs = @(
            @{ Uri = "v1.0/users/$User0"; Id = 'short' }
            [pscustomobject]@{ Uri = "$Endpoint/v1.0/users/$User1"; Id = 'absolute' }
            @{ Uri = "/users/$User0"; Id = 'plain' }
        )
        $results = @($reqs | Invoke-AzBatchRequest @Common)
        $results.Count | Should -Be 3
        $results | ForEach-Object { $_.Status | Should -Be 200 -Because $_.Name }
        ($results | Where-Object Name -eq 'absolute').Body.id | Should -Be $User1
        # The version the first request names is the run's.
        $beta = @{ Uri = "/beta/users/$User0"; Id = 'beta' } | Invoke-AzBatchRequest @Common
        $beta.Status | Should -Be 200
    }

    It 'sends v1.0 and beta requests in one run, each version in batches of its own' {
        $r = @(
            @{ Uri = "v1.0/users/$User0"; Id = 'v1' },
            @{ Uri = "beta/users/$User0"; Id = 'b2' },
            @{ Uri = "$Endpoint/beta/users/$User1"; Id = 'b3' }
        ) | Invoke-AzBatchRequest @Common
        ($r | Sort-Object Name | ForEach-Object { "$($_.Name) $($_.Status) $($_.Url)" }) |
            Should -Be @("b2 200 /beta/users/$User0", "b3 200 /beta/users/$User1", "v1 200 /users/$User0")
    }

    It 'says the fix in PowerShell''s words, not the command line''s' {
        $e = { @{ Url = '/me/messages' } | Invoke-AzBatchRequest -Api Arm @Common } | Should -Throw -PassThru
        $e.Exception.Message | Should -BeLike '*use -Api Graph'
        $e.Exception.Message | Should -Not -BeLike '*--api*'
        [AzBatch.AzBatchException]::InPowerShellWords('pick the version with graphVersion (--graph-version, -GraphVersion)') |
            Should -Be 'pick the version with -GraphVersion'
        [AzBatch.AzBatchException]::InPowerShellWords('allow that with retryNonIdempotent (--retry-non-idempotent, -RetryNonIdempotent); then more') |
            Should -Be 'allow that with -RetryNonIdempotent; then more'
    }
}

Describe "Answers that read as the peers' do" {
    It 'offers StatusCode and Content as Invoke-AzRestMethod''s answer does' {
        $r = Invoke-AzBatchRequest -Request $SubUrl @Common
        $r.StatusCode | Should -BeOfType [int]
        $r.StatusCode | Should -Be 200
        $r.Content | Should -BeOfType [string]
        ($r.Content | ConvertFrom-Json).subscriptionId | Should -Be $Sub0
        $r.Body.subscriptionId | Should -Be $Sub0 -Because 'Body still reads after Content'
    }

    It 'gives Body as Invoke-MgGraphRequest does with -OutputType' {
        $h = Invoke-AzBatchRequest -Request "/users/$User0" -OutputType Hashtable @Common
        $h.Body | Should -BeOfType [hashtable]
        $h.Body['id'] | Should -Be $User0
        $h.Body.ID | Should -Be $User0 -Because 'keys are read in any case, as Invoke-MgGraphRequest''s'
        $list = Invoke-AzBatchRequest -Request '/users?$top=2' -OutputType Hashtable @Common
        $list.Body.value[0] | Should -BeOfType [hashtable]
        $json = Invoke-AzBatchRequest -Request "/users/$User0" -OutputType Json @Common
        $json.Body | Should -BeOfType [string]
        ($json.Body | ConvertFrom-Json).id | Should -Be $User0
        (Invoke-AzBatchRequest -Request "/users/$User0" -OutputType PSObject @Common).Body.id | Should -Be $User0
    }
}

Describe 'docs/migrating.md' {
    BeforeAll {
        # The page's blocks: ```powershell before / after, ```sh before / after.
        $text = Get-Content -Raw (Join-Path $Repo 'docs/migrating.md')
        $script:Blocks = @([regex]::Matches($text, '(?ms)^```(powershell|sh) (before|after)\r?\n(.*?)^```') | ForEach-Object {
            [pscustomobject]@{ Language = $_.Groups[1].Value; Side = $_.Groups[2].Value; Code = $_.Groups[3].Value }
        })
        $script:Cli = $env:AZBATCH_CLI
        if (-not $Cli) { $script:Cli = Join-Path $Repo 'target/debug/azbatch' }
    }

    It 'has a before and an after for each peer' {
        @($Blocks | Where-Object Side -eq 'before').Count | Should -Be 4
        @($Blocks | Where-Object Side -eq 'after').Count | Should -BeGreaterOrEqual 4
    }

    It 'has PowerShell that parses, before and after' {
        foreach ($b in $Blocks | Where-Object Language -eq 'powershell') {
            $errors = $null
            [void][System.Management.Automation.Language.Parser]::ParseInput($b.Code, [ref]$null, [ref]$errors)
            $errors | Should -BeNullOrEmpty -Because $b.Code
        }
    }

    It 'runs each PowerShell "after" against the emulator, with no error or warning' {
        $subscriptionId = $Sub0
        $userIds = @($User0, $User1)
        $PSDefaultParameterValues['Invoke-AzBatchRequest:Endpoint'] = $Endpoint
        $PSDefaultParameterValues['Invoke-AzBatchRequest:AccessToken'] = $Token
        try {
            foreach ($b in $Blocks | Where-Object { $_.Language -eq 'powershell' -and $_.Side -eq 'after' }) {
                $out = @(& ([scriptblock]::Create($b.Code)) 2>&1 3>&1)
                @($out | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] -or $_ -is [System.Management.Automation.WarningRecord] }) |
                    Should -BeNullOrEmpty -Because $b.Code
            }
            # What the examples did is there.
            (Invoke-AzBatchRequest -Request "/subscriptions/$Sub0/resourcegroups/rg-jobs?api-version=2021-04-01").Status | Should -Be 200
            (Invoke-AzBatchRequest -Request "/users/$User1").Body.department | Should -Be 'Platform'
        } finally {
            $PSDefaultParameterValues.Remove('Invoke-AzBatchRequest:Endpoint')
            $PSDefaultParameterValues.Remove('Invoke-AzBatchRequest:AccessToken')
        }
    }

    It 'runs each PowerShell "before" with doubles of the peers, to the effect of its "after"' {
        $subscriptionId = $Sub0
        $userIds = @($User0, $User1)
        $endpoint = $Endpoint; $token = $Token
        # Doubles of the peers as the blocks call them, against the emulator: Invoke-AzRestMethod
        # answers a PSHttpResponse's StatusCode and Content; Invoke-MgGraphRequest sends the body as
        # JSON, throws on a failed status and gives the answer's body as a hashtable.
        function Invoke-AzRestMethod([string]$Method = 'GET', [string]$Path, [string]$Payload) {
            $r = Invoke-WebRequest -Method $Method -Uri ($endpoint + $Path) -Headers @{ Authorization = "Bearer $token" } `
                -ContentType 'application/json' -Body $Payload -SkipHttpErrorCheck
            [pscustomobject]@{ StatusCode = [int]$r.StatusCode; Content = [string]$r.Content }
        }
        function Invoke-MgGraphRequest([string]$Method = 'GET', [string]$Uri, $Body) {
            $json = if ($null -ne $Body) { ConvertTo-Json -InputObject $Body -Depth 10 } else { $null }
            $r = Invoke-WebRequest -Method $Method -Uri ($endpoint + '/' + $Uri.TrimStart('/')) -Headers @{ Authorization = "Bearer $token" } `
                -ContentType 'application/json' -Body $json
            if ($r.Content) { ConvertFrom-Json -InputObject ([string]$r.Content) -AsHashtable }
        }
        # Undo what an "after" may have done, so the "before" is what does it.
        $userIds | ForEach-Object { @{ Method = 'PATCH'; Uri = "v1.0/users/$_"; Body = @{ department = 'Before' } } } |
            Invoke-AzBatchRequest @Common | Out-Null
        $rgWeb = "/subscriptions/$Sub0/resourcegroups/rg-web?api-version=2021-04-01"
        Invoke-AzBatchRequest -Request @{ Method = 'DELETE'; Url = $rgWeb } @Common | Out-Null
        (Invoke-AzBatchRequest -Request $rgWeb -ErrorAction SilentlyContinue @Common).Status | Should -Be 404
        foreach ($b in $Blocks | Where-Object { $_.Language -eq 'powershell' -and $_.Side -eq 'before' }) {
            $out = @(& ([scriptblock]::Create($b.Code)) 2>&1 3>&1)
            @($out | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] -or $_ -is [System.Management.Automation.WarningRecord] }) |
                Should -BeNullOrEmpty -Because $b.Code
        }
        (Invoke-AzBatchRequest -Request $rgWeb @Common).Status | Should -Be 200
        $userIds | ForEach-Object { (Invoke-AzBatchRequest -Request "/users/$_" @Common).Body.department | Should -Be 'Platform' }
    }

    It 'runs the "az rest" before with a double of az, to the effect of the "azbatch run" after' -Skip:([System.IO.Path]::DirectorySeparatorChar -eq '\') {
        $dir = Join-Path ([IO.Path]::GetTempPath()) ('azbatch-before-' + [guid]::NewGuid())
        New-Item -ItemType Directory $dir | Out-Null
        try {
            $User0, $User1 | ForEach-Object { @{ Method = 'PATCH'; Uri = "v1.0/users/$_"; Body = @{ department = 'Before' } } } |
                Invoke-AzBatchRequest @Common | Out-Null
            Set-Content -Path (Join-Path $dir 'user-ids.txt') -Value @($User0, $User1)
            # `az rest` as the block calls it: the same arguments, the call made to the emulator.
            Set-Content -Path (Join-Path $dir 'az') -Value @(
                '#!/usr/bin/env python3',
                'import os, sys, urllib.request',
                'a = sys.argv[1:]; assert a[0] == "rest", a',
                'opt = dict(zip(a[1::2], a[2::2]))',
                'url = opt["--url"].replace("https://graph.microsoft.com", os.environ["AZBATCH_ENDPOINT"])',
                'body = opt.get("--body", "").encode() or None',
                'req = urllib.request.Request(url, data=body, method=opt["--method"].upper(), headers={"Authorization": "Bearer " + os.environ["AZBATCH_TOKEN"], "Content-Type": "application/json"})',
                'urllib.request.urlopen(req).read()')
            chmod +x (Join-Path $dir 'az')
            $code = ($Blocks | Where-Object { $_.Language -eq 'sh' -and $_.Side -eq 'before' } | Select-Object -First 1).Code
            Set-Content -Path (Join-Path $dir 'before.sh') -Value $code
            $env:AZBATCH_ENDPOINT = $Endpoint; $env:AZBATCH_TOKEN = $Token
            $path = $env:PATH
            $env:PATH = $dir + [IO.Path]::PathSeparator + $env:PATH
            Push-Location $dir
            try { bash ./before.sh } finally { Pop-Location; $env:PATH = $path }
            $LASTEXITCODE | Should -Be 0
            $User0, $User1 | ForEach-Object { (Invoke-AzBatchRequest -Request "/users/$_" @Common).Body.department | Should -Be 'Platform' }
        } finally {
            Remove-Item Env:AZBATCH_ENDPOINT, Env:AZBATCH_TOKEN -ErrorAction SilentlyContinue
            Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
        }
    }

    It 'runs the "azbatch run" after against the emulator' -Skip:([System.IO.Path]::DirectorySeparatorChar -eq '\') {
        if (-not (Test-Path $Cli)) { throw "the azbatch command is not built: $Cli (cargo build -p azbatch-cli)" }
        $dir = Join-Path ([IO.Path]::GetTempPath()) ('azbatch-migrate-' + [guid]::NewGuid())
        New-Item -ItemType Directory $dir | Out-Null
        try {
            Set-Content -Path (Join-Path $dir 'user-ids.txt') -Value @($User0, $User1)
            $code = ($Blocks | Where-Object { $_.Language -eq 'sh' -and $_.Side -eq 'after' } | Select-Object -First 1).Code
            Set-Content -Path (Join-Path $dir 'after.sh') -Value $code
            $env:AZBATCH_ENDPOINT = $Endpoint; $env:AZBATCH_TOKEN = $Token
            $env:PATH = (Split-Path $Cli) + [IO.Path]::PathSeparator + $env:PATH
            Push-Location $dir
            try { bash ./after.sh 2>$null } finally { Pop-Location }
            $LASTEXITCODE | Should -Be 0
            $results = @(Get-Content (Join-Path $dir 'results.jsonl') | ConvertFrom-Json)
            $results.Count | Should -Be 2
            $results | ForEach-Object { $_.status | Should -Be 204 -Because ($_ | ConvertTo-Json -Compress) }
        } finally {
            Remove-Item Env:AZBATCH_ENDPOINT, Env:AZBATCH_TOKEN -ErrorAction SilentlyContinue
            Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
        }
    }
}

Describe 'The default table' {
    It 'shows a failure''s error code and message, and each subscription''s name' {
        $bad = Invoke-AzBatchRequest -Request @{ Id = 'bad'; Url = "/subscriptions/$Sub0/resourcegroups/nowhere?api-version=2021-04-01" } -ErrorAction SilentlyContinue @Common
        $table = $bad | Format-Table | Out-String -Width 200
        $table | Should -Match 'Name\s+Status\s+Error\s+Message'
        $table | Should -Match "bad\s+404\s+$([regex]::Escape($bad.Error.code))\s+\S"
        $subs = Invoke-AzBatchRequest -ForEachSubscription -Url '/subscriptions/{subscriptionId}?api-version=2022-12-01' @Common
        ($subs | Format-Table | Out-String -Width 200) | Should -Match ([regex]::Escape("$Sub0 (Subscription 0)"))
    }
}

Describe 'Bodies keep their shape' {
    BeforeAll {
        function script:Put-Group([string]$Name, $Body) {
            $url = "/subscriptions/$Sub0/resourcegroups/$Name`?api-version=2021-04-01"
            $put = @{ Method = 'PUT'; Url = $url; Body = $Body } | Invoke-AzBatchRequest @Common
            $put.Status | Should -BeIn 200, 201
            (Invoke-AzBatchRequest -Request $url @Common).Body
        }
        function script:Json-Of($Body) {
            [AzBatch.Requests]::Read(@{ Method = 'PUT'; Url = '/x'; Body = $Body }, 0).Json
        }
    }

    It 'sends an empty array as []' {
        $g = Put-Group 'shape-empty' @{ location = 'westeurope'; tags = @() }
        , $g.tags | Should -BeOfType [object[]]
        @($g.tags).Count | Should -Be 0
    }

    It 'sends a one-element array as an array' {
        $g = Put-Group 'shape-one' @{ location = 'westeurope'; tags = @('one') }
        , $g.tags | Should -BeOfType [object[]]
        $g.tags[0] | Should -Be 'one'
    }

    It 'sends JSON text starting with { as the object it holds' {
        $g = Put-Group 'shape-text' '{"location":"westeurope","tags":{"k":[1,2]}}'
        $g.tags.k | Should -Be @(1, 2)
    }

    It 'sends JSON text starting with [ as an array, and other text as a string' {
        Json-Of '[1,2]' | Should -Match '"body":\[1,2\]'
        Json-Of @() | Should -Match '"body":\[\]'
        Json-Of @('one') | Should -Match '"body":\["one"\]'
        Json-Of 'hello' | Should -Match '"body":"hello"'
    }

    It 'reads back strings that hold quotes, braces, commas and escapes' {
        # Bodies and headers are read from the result's JSON when first asked
        # for: what ends a value must be found inside strings too.
        $tricky = [ordered]@{ q = 'say "hi"}'; odd = '}"'; b = '{[,]}'; s = 'C:\temp\'; u = "tab`tnew`nline é ✓"; e = '' }
        $g = Put-Group 'shape-strings' @{ location = 'westeurope'; tags = $tricky }
        foreach ($k in $tricky.Keys) { $g.tags.$k | Should -BeExactly $tricky[$k] }
        $r = Invoke-AzBatchRequest -Request "/subscriptions/$Sub0/resourcegroups/shape-strings?api-version=2021-04-01" @Common
        $r.Headers | Should -Not -BeNullOrEmpty
        $r.Body.tags.q | Should -BeExactly 'say "hi"}'
        $r.Body.tags.q | Should -BeExactly 'say "hi"}' -Because 'a second read gives the same value'
    }

    It 'refuses text that looks like JSON but is not' {
        { Json-Of '{"a":' } | Should -Throw '*looks like JSON text*'
    }

    It 'sends dates as ISO 8601, never \/Date()\/' {
        $when = [datetime]::new(2026, 12, 1, 9, 0, 0, [DateTimeKind]::Utc)
        $g = Put-Group 'shape-date' @{ location = 'westeurope'; tags = @{ when = $when } }
        $g.tags.when | Should -Be '2026-12-01T09:00:00.0000000Z'
        Json-Of @{ when = $when } | Should -Not -Match 'Date\('
    }
}

Describe 'Microsoft Graph' {
    It 'onboards a user with dependencies and references' {
        $user = '{{newUser.body.id}}'
        $results = @(
            @{ Id = 'newUser'; Method = 'POST'; Url = '/users'; Body = @{ displayName = 'Pester'; userPrincipalName = 'pester@contoso.example' } }
            @{ Id = 'license'; Method = 'POST'; Url = "/users/$user/assignLicense"; DependsOn = 'newUser'; Body = @{ addLicenses = @(@{ skuId = 'c7df2760-2c81-4ef7-b578-5b5392b571df' }); removeLicenses = @() } }
            @{ Id = 'group'; Method = 'POST'; Url = "/groups/$Group0/members/`$ref"; DependsOn = 'newUser'; Body = @{ '@odata.id' = "https://graph.microsoft.com/v1.0/directoryObjects/$user" } }
        ) | Invoke-AzBatchRequest -Api Graph @Common
        $results.Count | Should -Be 3
        ($results | Where-Object Name -eq 'license').Status | Should -Be 200
        ($results | Where-Object Name -eq 'group').Status | Should -Be 204
    }

    It 'knows a relative Graph URL without -Api' {
        $r = "/users/$User0" | Invoke-AzBatchRequest @Common
        $r.Status | Should -Be 200
        $r.Body.id | Should -Be $User0
    }

    It 'refuses a URL that could be either API, saying how to choose' {
        { '/somewhere/else' | Invoke-AzBatchRequest @Common } | Should -Throw '*-Api Arm or -Api Graph*'
    }

    It 'speaks Graph beta with -GraphVersion' {
        $r = "/users/$User0" | Invoke-AzBatchRequest -GraphVersion beta @Common
        $r.Status | Should -Be 200
    }

    It 'hands out non-JSON answers as base64' {
        $photo = Invoke-AzBatchRequest -Api Graph -Request "/users/$User0/photo/`$value" @Common
        $photo.BodyEncoding | Should -Be 'base64'
        [Convert]::FromBase64String($photo.Body)[0] | Should -Be 0xFF
    }

    It 'keeps an answer whose keys differ only in case, and goes on' {
        $patch = @{ Method = 'PATCH'; Url = "/users/$User1"; Body = '{"Nickname":"A","nickname":"b"}' } | Invoke-AzBatchRequest @Common
        $patch.Status | Should -Be 204
        $results = @("/users/$User0", "/users/$User1", "/users/$User0`?`$select=id") | Invoke-AzBatchRequest @Common
        $results.Count | Should -Be 3
        $results | ForEach-Object { $_.Status | Should -Be 200 }
        $odd = $results | Where-Object { $_.Body -is [System.Collections.IDictionary] }
        $odd.Body['Nickname'] | Should -Be 'A'
        $odd.Body['nickname'] | Should -Be 'b'
    }
}

Describe 'Writes, -WhatIf and tokens' {
    BeforeAll {
        $script:NoTokenEnv = @{ Endpoint = $Endpoint }
        # The core reads the variables of the process's environment, set before
        # it starts, as Azure Automation and App Service set them: so a child
        # pwsh that inherits $Vars runs one request with $Switch; its status.
        function script:Invoke-ChildWithEnvironment([hashtable]$Vars, [string]$Switch) {
            foreach ($k in $Vars.Keys) { Set-Item "env:$k" $Vars[$k] }
            try {
                $cmd = "Import-Module '$ModuleDir/AzBatch.psd1'; ('$SubUrl' | Invoke-AzBatchRequest $Switch -Endpoint '$Endpoint').Status"
                & $Pwsh -NoProfile -NonInteractive -Command $cmd
            } finally {
                foreach ($k in $Vars.Keys) { Remove-Item "env:$k" }
            }
        }
    }

    It 'keeps a journal with -JournalPath: a rerun replays what finished and sends nothing again' {
        $rg = "/subscriptions/$Sub0/resourcegroups/journaled?api-version=2021-04-01"
        $reqs = @(@{ Id = 'put'; Method = 'PUT'; Url = $rg; Body = @{ location = 'westeurope' } }, @{ Id = 'get'; Url = $SubUrl })
        $journal = Join-Path $TestDrive 'run.journal'
        $first = $reqs | Invoke-AzBatchRequest @Common -JournalPath $journal
        ($first | Where-Object Name -eq 'put').Status | Should -BeIn 200, 201
        # Deleted behind the journal's back: a rerun that sent the PUT again would create it again.
        $null = Invoke-AzBatchRequest -Request @{ Method = 'DELETE'; Url = $rg } @Common
        $second = $reqs | Invoke-AzBatchRequest @Common -JournalPath $journal
        @($second).Count | Should -Be 2
        ($second | Where-Object Name -eq 'put').Status | Should -Be ($first | Where-Object Name -eq 'put').Status
        (Invoke-AzBatchRequest -Request $rg @Common -ErrorAction SilentlyContinue).Status | Should -Be 404 -Because 'the PUT was replayed, not sent'
        $other = @(@{ Id = 'put'; Method = 'PUT'; Url = $rg; Body = @{ location = 'norwayeast' } })
        { $other | Invoke-AzBatchRequest @Common -JournalPath $journal -ErrorAction Stop } | Should -Throw '*different input*'
    }

    It 'lists writes with -WhatIf, sends nothing and asks for no token' {
        $rg = "/subscriptions/$Sub0/resourcegroups/whatif?api-version=2021-04-01"
        $out = @{ Method = 'PUT'; Url = $rg; Body = @{ location = 'westeurope' } } |
            Invoke-AzBatchRequest @NoTokenEnv -WhatIf
        $out | Should -BeNullOrEmpty
        $check = Invoke-AzBatchRequest -Request $rg @Common -ErrorAction SilentlyContinue
        $check.Status | Should -Be 404
    }

    It 'asks before each write with -Confirm, and sends only what was confirmed' {
        # A host that answers the prompt as a user would: [Y] Yes is choice 0, [N] No is 2.
        if (-not ('AzBatchTests.AnsweringHost' -as [type])) {
            Add-Type -TypeDefinition @'
using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;

namespace AzBatchTests
{
    public class AnsweringUI : PSHostUserInterface
    {
        public int Answer;
        public List<string> Asked = new List<string>();
        public override PSHostRawUserInterface RawUI { get { return null; } }
        public override string ReadLine() { return ""; }
        public override SecureString ReadLineAsSecureString() { return new SecureString(); }
        public override void Write(string value) { }
        public override void Write(ConsoleColor foreground, ConsoleColor background, string value) { }
        public override void WriteLine(string value) { }
        public override void WriteErrorLine(string value) { }
        public override void WriteDebugLine(string message) { }
        public override void WriteProgress(long sourceId, ProgressRecord record) { }
        public override void WriteVerboseLine(string message) { }
        public override void WriteWarningLine(string message) { }
        public override Dictionary<string, PSObject> Prompt(string caption, string message, Collection<FieldDescription> descriptions) { throw new NotSupportedException(); }
        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName) { throw new NotSupportedException(); }
        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName, PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options) { throw new NotSupportedException(); }
        public override int PromptForChoice(string caption, string message, Collection<ChoiceDescription> choices, int defaultChoice) { Asked.Add(message); return Answer; }
    }

    public class AnsweringHost : PSHost
    {
        private readonly AnsweringUI ui = new AnsweringUI();
        private readonly Guid id = Guid.NewGuid();
        public AnsweringUI Answers { get { return ui; } }
        public override string Name { get { return "AzBatchTests"; } }
        public override Version Version { get { return new Version(1, 0); } }
        public override Guid InstanceId { get { return id; } }
        public override PSHostUserInterface UI { get { return ui; } }
        public override CultureInfo CurrentCulture { get { return CultureInfo.InvariantCulture; } }
        public override CultureInfo CurrentUICulture { get { return CultureInfo.InvariantCulture; } }
        public override void SetShouldExit(int exitCode) { }
        public override void EnterNestedPrompt() { throw new NotSupportedException(); }
        public override void ExitNestedPrompt() { throw new NotSupportedException(); }
        public override void NotifyBeginApplication() { }
        public override void NotifyEndApplication() { }
    }
}
'@
        }
        $answering = New-Object AzBatchTests.AnsweringHost
        $rs = [runspacefactory]::CreateRunspace($answering)
        $rs.Open()
        try {
            $base = "/subscriptions/$Sub0/resourcegroups"
            $script = @"
Import-Module '$ModuleDir/AzBatch.psd1'
@(
    @{ Method = 'PUT'; Url = '$base/confirm-a?api-version=2021-04-01'; Body = @{ location = 'westeurope' } }
    '/subscriptions/${Sub0}?api-version=2022-12-01'
    @{ Method = 'PUT'; Url = '$base/confirm-b?api-version=2021-04-01'; Body = @{ location = 'westeurope' } }
) | Invoke-AzBatchRequest -Endpoint '$Endpoint' -AccessToken '$Token' -Confirm
"@
            foreach ($answer in 2, 0) {
                $answering.Answers.Answer = $answer
                $answering.Answers.Asked.Clear()
                $ps = [PowerShell]::Create()
                $ps.Runspace = $rs
                $out = @($ps.AddScript($script).Invoke())
                $ps.Dispose()
                $answering.Answers.Asked.Count | Should -Be 2 -Because 'each write is asked about, the read is not'
                $answering.Answers.Asked[0] | Should -BeLike '*PUT*confirm-a*'
                $sent = @($out | ForEach-Object { $_.Status })
                if ($answer -eq 2) { $sent | Should -Be @(200) } else { @($sent | Sort-Object) | Should -Be @(200, 201, 201) }
                $a = Invoke-AzBatchRequest -Request "$base/confirm-a?api-version=2021-04-01" @Common -ErrorAction SilentlyContinue
                $a.Status | Should -Be ($(if ($answer -eq 2) { 404 } else { 200 }))
            }
        } finally {
            $rs.Dispose()
        }
    }

    It 'skips what depends on a write -WhatIf skipped' {
        $rg = "/subscriptions/$Sub0/resourcegroups/whatif2?api-version=2021-04-01"
        $out = @(
            @{ Id = 'make'; Method = 'PUT'; Url = $rg; Body = @{ location = 'westeurope' } }
            @{ Id = 'tag'; Method = 'PATCH'; Url = $rg; DependsOn = 'make'; Body = @{ tags = @{ a = '1' } } }
        ) | Invoke-AzBatchRequest @NoTokenEnv -WhatIf 3>&1
        # A warning, shown without -Verbose.
        ($out | Where-Object { $_ -is [System.Management.Automation.WarningRecord] -and $_.Message -match "Skipping PATCH .*whatif2.*depends on 'make'" }) | Should -Not -BeNullOrEmpty
    }

    It 'names a request without an Id by its input position, whatever -WhatIf skipped before it' {
        $out = @(
            $SubUrl,
            @{ Method = 'PUT'; Url = "/subscriptions/$Sub0/resourcegroups/whatif3?api-version=2021-04-01"; Body = @{ location = 'westeurope' } },
            $SubUrl,
            @{ Id = 'given'; Url = $SubUrl },
            @{ Id = '5'; Url = $SubUrl },
            $SubUrl
        ) | Invoke-AzBatchRequest @Common -WhatIf
        # Position 5 is another request's given id: that one keeps it, this one gets the library's own.
        $names = @($out | ForEach-Object Name)
        foreach ($n in '0', '2', '5', 'given') { $names | Should -Contain $n }
        $names.Count | Should -Be 5
        @($names | Sort-Object -Unique).Count | Should -Be 5
        $out | ForEach-Object { $_.Status | Should -Be 200 }
    }

    It 'asks for no token on an empty pipeline' {
        { @() | Invoke-AzBatchRequest @NoTokenEnv } | Should -Not -Throw
    }

    It 'says where to get a token when there is none' {
        { $SubUrl | Invoke-AzBatchRequest @NoTokenEnv } | Should -Throw '*No access token*-Identity*'
    }

    It 'takes the Az context token with -AsSecureString, and its probes leave no error behind' {
        $global:AzCalls = @()
        function global:Get-AzAccessToken {
            [CmdletBinding()]
            param([string]$ResourceUrl, [switch]$AsSecureString)
            $global:AzCalls += "$ResourceUrl secure=$AsSecureString"
            [pscustomobject]@{ Token = (ConvertTo-SecureString $Token -AsPlainText -Force) }
        }
        try {
            $Error.Clear()
            $results = Invoke-AzBatchRequest -Request $SubUrl, "/subscriptions/$Sub0/resourcegroups/none?api-version=2021-04-01" @NoTokenEnv -ErrorVariable failed -ErrorAction SilentlyContinue
            @($results).Count | Should -Be 2
            @($failed).Count | Should -Be 1
            $failed[0].TargetObject.Status | Should -Be 404
            $global:AzCalls | Should -Be @('https://management.azure.com/ secure=True')
        } finally {
            Remove-Item function:global:Get-AzAccessToken
        }
    }

    It 'renews an Az context token during a run that outlives it' {
        # The emulator issues tokens that live 3 s; the run takes about 6 s.
        $short = Start-Emulator @('--subscriptions', '2', '--latency-ms', '300', '--token-lifetime-secs', '3')
        $global:IssuedTokens = 0
        $global:ShortEndpoint = $short.Url
        function global:Get-AzAccessToken {
            [CmdletBinding()]
            param([string]$ResourceUrl, [switch]$AsSecureString)
            $global:IssuedTokens++
            $t = Invoke-RestMethod -Uri "$global:ShortEndpoint/msi/token?resource=$([uri]::EscapeDataString($ResourceUrl))&api-version=2019-08-01" -Headers @{ 'X-IDENTITY-HEADER' = 'emulator-identity-header' }
            [pscustomobject]@{
                Token     = (ConvertTo-SecureString $t.access_token -AsPlainText -Force)
                ExpiresOn = [DateTimeOffset]::FromUnixTimeSeconds([long]$t.expires_on)
            }
        }
        try {
            $urls = 0..19 | ForEach-Object { "/subscriptions/00000000-0000-4000-8000-000000000001?api-version=2022-12-01&n=$_" }
            $results = @($urls | Invoke-AzBatchRequest -Endpoint $short.Url -BatchSize 1 -ThrottleLimit 1 -WarningVariable warned)
            $results.Count | Should -Be 20
            @($results | Where-Object { $_.Status -ne 200 }).Count | Should -Be 0 -Because (($results | Where-Object Status -ne 200 | Select-Object -First 1).Error | Out-String)
            $global:IssuedTokens | Should -BeGreaterOrEqual 2
            $warned | Should -BeNullOrEmpty
        } finally {
            Remove-Item function:global:Get-AzAccessToken
            Stop-Process -Id $short.Process.Id -ErrorAction SilentlyContinue
        }
    }

    It 'takes the token of a Connect-MgGraph session for Graph, renewed as the run goes' {
        # A double of Microsoft.Graph.Authentication: Get-MgContext says a
        # session is there; Invoke-MgGraphRequest puts the session's token on
        # its request (from the emulator, living 3 s; the run takes about 6 s).
        $short = Start-Emulator @('--users', '5', '--latency-ms', '300', '--token-lifetime-secs', '3')
        $global:MgCalls = @()
        $global:ShortEndpoint = $short.Url
        function global:Get-MgContext { [pscustomobject]@{ TenantId = '72f988bf-0000-4000-8000-000000000000'; AuthType = 'Delegated' } }
        function global:Invoke-MgGraphRequest {
            [CmdletBinding()]
            param([string]$Method, [string]$Uri, [string]$OutputType, [switch]$SkipHttpErrorCheck)
            $global:MgCalls += "$Method $Uri $OutputType $SkipHttpErrorCheck"
            $t = Invoke-RestMethod -Uri "$global:ShortEndpoint/msi/token?resource=$([uri]::EscapeDataString('https://graph.microsoft.com'))&api-version=2019-08-01" -Headers @{ 'X-IDENTITY-HEADER' = 'emulator-identity-header' }
            [pscustomobject]@{ StatusCode = 400; RequestMessage = [pscustomobject]@{ Headers = [pscustomobject]@{ Authorization = [pscustomobject]@{ Scheme = 'Bearer'; Parameter = $t.access_token } } } }
        }
        try {
            $urls = 0..19 | ForEach-Object { "/users/$User0`?n=$_" }
            $results = @($urls | Invoke-AzBatchRequest -Endpoint $short.Url -BatchSize 1 -ThrottleLimit 1 -WarningVariable warned)
            $results.Count | Should -Be 20
            @($results | Where-Object { $_.Status -ne 200 }).Count | Should -Be 0 -Because (($results | Where-Object Status -ne 200 | Select-Object -First 1).Error | Out-String)
            $global:MgCalls.Count | Should -BeGreaterOrEqual 2 -Because 'the 3-second token was renewed'
            $global:MgCalls[0] | Should -Be 'GET v1.0/me?$select=id HttpResponseMessage True'
            $warned | Should -BeNullOrEmpty
            # ARM runs do not use the Graph session (whatever else they find).
            $before = $global:MgCalls.Count
            try { $null = $SubUrl | Invoke-AzBatchRequest -Endpoint $short.Url -ErrorAction SilentlyContinue } catch { }
            $global:MgCalls.Count | Should -Be $before
        } finally {
            Remove-Item function:global:Get-MgContext, function:global:Invoke-MgGraphRequest
            Stop-Process -Id $short.Process.Id -ErrorAction SilentlyContinue
        }
    }

    It 'says what it tried, Connect-MgGraph included, when a Graph run finds no sign-in' {
        function global:Get-MgContext { $null }
        function global:Invoke-MgGraphRequest { throw 'not to be called without a session' }
        try {
            { "/users/$User0" | Invoke-AzBatchRequest @NoTokenEnv } | Should -Throw '*Connect-MgGraph*Get-MgContext: no session (run Connect-MgGraph)*'
        } finally {
            Remove-Item function:global:Get-MgContext, function:global:Invoke-MgGraphRequest
        }
    }

    It 'stops at a token the service refuses: one terminating error, with what to do' {
        $urls = 0..9 | ForEach-Object { "/subscriptions/$Sub0`?api-version=2022-12-01&n=$_" }
        $errors = @()
        try {
            $urls | Invoke-AzBatchRequest -Endpoint $Endpoint -AccessToken 'wrong-token' -BatchSize 1 -ThrottleLimit 1 -ErrorVariable +errors -ErrorAction SilentlyContinue
        } catch { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty -Because 'a refused token ends the run'
        $caught.FullyQualifiedErrorId | Should -Match '^AzBatch.TokenRefused'
        $caught.CategoryInfo.Category | Should -Be 'AuthenticationError'
        $caught.Exception.Message | Should -Match 'refused the token \(HTTP 401.*-AccessToken.*Connect-AzAccount'
        $caught.Exception.Message | Should -Not -Match 'wrong-token'
        @($errors | Where-Object { "$($_.FullyQualifiedErrorId)" -match 'RequestFailed' }).Count | Should -Be 0 -Because 'one error, not one per request'
    }

    It 'takes the token as a SecureString and never writes it' {
        $secure = ConvertTo-SecureString $Token -AsPlainText -Force
        $all = Invoke-AzBatchRequest -Request $SubUrl -Endpoint $Endpoint -AccessToken $secure -Verbose -Debug 4>&1 5>&1 | Out-String
        $all | Should -Not -Match $Token
        $all | Should -Match '200'
    }

    It 'signs in with -Identity (managed identity) and renews in the core' {
        # The IMDS host is pointed at the emulator too, so nothing can leave the machine.
        $vars = @{
            IDENTITY_ENDPOINT = "$Endpoint/msi/token"; IDENTITY_HEADER = 'emulator-identity-header'
            AZURE_POD_IDENTITY_AUTHORITY_HOST = $Endpoint
        }
        Invoke-ChildWithEnvironment $vars '-Identity' | Should -Be '200'
    }

    It 'signs in with -UseAzureCli' -Skip:$OnWindows {
        $dir = Join-Path ([IO.Path]::GetTempPath()) ('azbatch-az-' + [guid]::NewGuid())
        New-Item -ItemType Directory $dir | Out-Null
        Set-Content -Path "$dir/az" -Value "#!/bin/sh`nprintf '{""accessToken"":""$Token"",""expires_on"":%s}' `$(( `$(date +%s) + 3600 ))"
        chmod +x "$dir/az"
        $path = $env:PATH
        $env:PATH = "$dir$([IO.Path]::PathSeparator)$path"
        try {
            ($SubUrl | Invoke-AzBatchRequest -UseAzureCli -Endpoint $Endpoint).Status | Should -Be 200
        } finally {
            $env:PATH = $path
            Remove-Item $dir -Recurse -Force
        }
    }

    It 'signs in with -UseClientSecret (a service principal from the environment)' {
        $vars = @{
            AZURE_TENANT_ID = '72f988bf-0000-4000-8000-000000000000'; AZURE_CLIENT_ID = 'pester-app'
            AZURE_CLIENT_SECRET = 'emulator-client-secret'; AZURE_AUTHORITY_HOST = $Endpoint
        }
        Invoke-ChildWithEnvironment $vars '-UseClientSecret' | Should -Be '200'
    }

    It 'refuses two token sources at once' {
        { $SubUrl | Invoke-AzBatchRequest -Identity -AccessToken $Token -Endpoint $Endpoint } | Should -Throw '*not more than one*'
    }
}

Describe 'Failures and parameters' {
    It 'writes failures as non-terminating errors with a readable message' {
        $missing = "/subscriptions/$Sub0/resourcegroups/missing?api-version=2021-04-01"
        $results = Invoke-AzBatchRequest -Request $missing, $SubUrl @Common -ErrorVariable failed -ErrorAction SilentlyContinue
        @($results).Count | Should -Be 2
        $failed.Count | Should -Be 1
        $failed[0].Exception.Message | Should -Match "status 404: ResourceGroupNotFound: Resource group 'missing' could not be found"
        $failed[0].TargetObject.Status | Should -Be 404
        ($failed[0].TargetObject.Method, $failed[0].TargetObject.Url) | Should -Be @('GET', "/subscriptions/$Sub0/resourcegroups/missing?api-version=2021-04-01")
        $failed[0].TargetObject.Body.error.code | Should -Be 'ResourceGroupNotFound'
        $failed[0].ErrorDetails | Should -BeNullOrEmpty
        $failed[0].FullyQualifiedErrorId | Should -Match '^AzBatch.RequestFailed.ResourceGroupNotFound'
        @($results | Where-Object Succeeded).Count | Should -Be 1
    }

    It 'names the endpoint and each failed request in -Verbose' {
        $out = @(Invoke-AzBatchRequest -Request "/subscriptions/$Sub0/resourcegroups/gone?api-version=2021-04-01" @Common -ErrorAction SilentlyContinue -Verbose 4>&1)
        $verbose = @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
        $verbose | Where-Object { $_ -like "API: Arm; endpoint $Endpoint (AzureCloud)" } | Should -Not -BeNullOrEmpty -Because ($verbose -join "`n")
        $verbose | Where-Object { $_ -like "Failed: Request '0' (GET /subscriptions/$Sub0/resourcegroups/gone*) failed with status 404*" } | Should -Not -BeNullOrEmpty -Because ($verbose -join "`n")
    }

    It 'stops at the first failure with -ErrorAction Stop' {
        { Invoke-AzBatchRequest -Request "/subscriptions/$Sub0/resourcegroups/nope?api-version=2021-04-01" @Common -ErrorAction Stop } |
            Should -Throw "*Request '0' (GET /subscriptions/$Sub0/resourcegroups/nope?api-version=2021-04-01) failed with status 404*"
    }

    It 'checks ranges against the library''s limits, in the module''s names' {
        { $SubUrl | Invoke-AzBatchRequest -ThrottleLimit 0 @Common } | Should -Throw '*-ThrottleLimit must be between 1 and 256*'
        { $SubUrl | Invoke-AzBatchRequest -MaxAttempts 101 @Common } | Should -Throw '*-MaxAttempts must be between 1 and 100*'
        { "/users/$User0" | Invoke-AzBatchRequest -BatchSize 21 @Common } | Should -Throw '*-BatchSize must be between 1 and 20*'
    }

    It 'takes the cloud names from the library' {
        { $SubUrl | Invoke-AzBatchRequest -Environment Mars @Common } | Should -Throw '*AzureCloud, AzureUSGovernment, AzureChinaCloud*'
        $line = 'Invoke-AzBatchRequest -Environment AzureU'
        $done = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $done.CompletionMatches.CompletionText | Should -Be @('AzureUSGovernment')
    }

    It 'takes the Graph versions and the request keys from the library' {
        { "/users/$User0" | Invoke-AzBatchRequest -GraphVersion v2.0 @Common } | Should -Throw "*-GraphVersion must be one of v1.0, beta (got 'v2.0')*"
        $line = 'Invoke-AzBatchRequest -GraphVersion b'
        $done = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $done.CompletionMatches.CompletionText | Should -Be @('beta')
        # The message lists the library's keys, the peers' among them.
        { @{ Url = $SubUrl; Boddy = @{} } | Invoke-AzBatchRequest @Common } | Should -Throw '*a request takes Id, Name, Method, HttpMethod, Url*Path, Payload*ContentType, Uri)*'
        $e = { @{ Url = $SubUrl; Uri = $SubUrl } | Invoke-AzBatchRequest @Common } | Should -Throw -PassThru
        $e.Exception.Message | Should -Match 'Url is given twice \(as (Url and as Uri|Uri and as Url)\)'
        # A field of the library's the module does not read itself is passed on, not dropped.
        { @{ Url = $SubUrl; ForEachSubscription = 'yes' } | Invoke-AzBatchRequest @Common } | Should -Throw '*forEachSubscription*'
    }

    It 'writes one verbose line per batch and no debug line per result' {
        $reqs = 0..39 | ForEach-Object { "/subscriptions/$Sub0`?api-version=2022-12-01&n=$_" }
        $out = $reqs | Invoke-AzBatchRequest -BatchSize 10 -ThrottleLimit 1 @Common -Verbose -Debug 4>&1 5>&1
        $lines = @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -like 'Batch * sent*' })
        $numbers = $lines | ForEach-Object { [int]($_.Message -replace '^Batch (\d+) sent.*$', '$1') }
        # Batches of up to 10: at least 4; the first may leave before the pipeline has given the rest.
        $numbers | Should -Be (1..$lines.Count)
        $lines.Count | Should -BeGreaterOrEqual 4
        $lines.Count | Should -BeLessOrEqual 8
        @($out | Where-Object { $_ -is [System.Management.Automation.DebugRecord] }).Count | Should -Be 0
        @($out | Where-Object { $_.PSObject.TypeNames -contains 'AzBatch.Response' }).Count | Should -Be 40
    }
}

Describe 'Progress, cancellation and long runs' {
    BeforeAll {
        # Starts $Script against the slow emulator, stops it after $AfterMs as
        # Ctrl+C would, and checks the stop took under 3 s; returns the
        # progress records written.
        function script:Assert-StopsPromptly([string]$Script, [int]$AfterMs) {
            $ps = New-Shell $Script $Slow.Url
            $handle = $ps.BeginInvoke()
            Start-Sleep -Milliseconds $AfterMs
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            $handle.AsyncWaitHandle.WaitOne(3000) | Should -BeTrue
            $sw.Elapsed.TotalSeconds | Should -BeLessThan 3
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            $records = @($ps.Streams.Progress)
            $ps.Dispose()
            , $records
        }
        $script:Slow = Start-Emulator @('--subscriptions', '3', '--latency-ms', '1500')
        $script:Fast = Start-Emulator @('--subscriptions', '6', '--no-throttle')
    }
    AfterAll {
        if ($script:Slow) { Stop-Process -Id $Slow.Process.Id -ErrorAction SilentlyContinue }
        if ($script:Fast) { Stop-Process -Id $Fast.Process.Id -ErrorAction SilentlyContinue }
    }

    It 'shows progress under its own id, a few times a second at most, and completes it' {
        $ps = New-Shell '0..29 | ForEach-Object { "/subscriptions/00000000-0000-4000-8000-000000000001?api-version=2022-12-01&n=$_" } | Invoke-AzBatchRequest -Endpoint $Endpoint -AccessToken $Token -BatchSize 5 -ThrottleLimit 1' $Slow.Url
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $out = $ps.Invoke()
        $seconds = $sw.Elapsed.TotalSeconds
        $out.Count | Should -Be 30
        $records = @($ps.Streams.Progress)
        $records | ForEach-Object { $_.ActivityId | Should -Be 0x4A5A }
        @($records | Where-Object RecordType -eq 'Completed').Count | Should -Be 1
        $records[-1].RecordType | Should -Be 'Completed'
        $records.Count | Should -BeLessOrEqual ([math]::Ceiling($seconds * 4) + 2)
        $ps.Dispose()
    }

    It 'completes its progress when -ErrorAction Stop ends the run' {
        $ps = New-Shell 'try { 0..9 | ForEach-Object { "/subscriptions/00000000-0000-4000-8000-000000000001/resourcegroups/n$_`?api-version=2021-04-01" } | Invoke-AzBatchRequest -Endpoint $Endpoint -AccessToken $Token -BatchSize 2 -ThrottleLimit 1 -ErrorAction Stop } catch { "stopped" }' $Slow.Url
        $out = $ps.Invoke()
        $out | Should -Contain 'stopped'
        @($ps.Streams.Progress)[-1].RecordType | Should -Be 'Completed'
        $ps.Dispose()
    }

    It 'sends the first batch before the pipeline ends, and writes results while input still flows' {
        # Each call takes 1.5 s. The first request goes out at once, so its
        # answer is written when the next request arrives (2 s), not after the
        # pipeline's end (3.5 s and later).
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $seen = New-Object System.Collections.Generic.List[double]
        $url = '/subscriptions/00000000-0000-4000-8000-000000000001?api-version=2022-12-01'
        & { $url; Start-Sleep -Seconds 2; "$url&n=2"; Start-Sleep -Seconds 2; "$url&n=3" } |
            Invoke-AzBatchRequest -Endpoint $Slow.Url -AccessToken $Token |
            ForEach-Object { $seen.Add($sw.Elapsed.TotalSeconds) }
        $seen.Count | Should -Be 3
        $seen[0] | Should -BeLessThan 3.0
        $seen[1] | Should -BeLessThan 5.0
    }

    It 'gives up an attempt after -AttemptTimeoutSec: reads go again, writes end OutcomeUnknown unless -RetryNonIdempotent' {
        # Every answer of the slow emulator takes 1.5 s; an attempt may wait 1 s.
        $sub = '/subscriptions/00000000-0000-4000-8000-000000000001'
        $reqs = @(
            @{ Id = 'read'; Url = "$sub`?api-version=2022-12-01" },
            @{ Id = 'write'; Method = 'POST'; Url = "$sub/resourcegroups/rg/providers/Microsoft.Web/sites/s/restart?api-version=2022-03-01"; Body = @{} }
        )
        $results = $reqs | Invoke-AzBatchRequest -Endpoint $Slow.Url -AccessToken $Token -AttemptTimeoutSec 1 -MaxAttempts 2 -ErrorAction SilentlyContinue
        $read = $results | Where-Object Name -eq 'read'
        $write = $results | Where-Object Name -eq 'write'
        ($read.Error.code, $read.Attempts) | Should -Be @('InvalidResponse', 2)
        $read.Error.message | Should -Match 'no answer within 1 s'
        ($write.Error.code, $write.Attempts) | Should -Be @('OutcomeUnknown', 1)
        $write.Error.message | Should -Match '-RetryNonIdempotent'
        $again = $reqs[1] | Invoke-AzBatchRequest -Endpoint $Slow.Url -AccessToken $Token -AttemptTimeoutSec 1 -MaxAttempts 2 -RetryNonIdempotent -ErrorAction SilentlyContinue
        ($again.Error.code, $again.Attempts) | Should -Be @('InvalidResponse', 2)
        { Invoke-AzBatchRequest -Request '/x' -Endpoint $Slow.Url -AccessToken $Token -AttemptTimeoutSec 0 } | Should -Throw '*AttemptTimeoutSec*'
    }

    It 'returns promptly when stopped mid-run (Ctrl+C), and completes its progress' {
        $records = Assert-StopsPromptly '0..59 | ForEach-Object { "/subscriptions/00000000-0000-4000-8000-000000000002?api-version=2022-12-01&n=$_" } | Invoke-AzBatchRequest -Endpoint $Endpoint -AccessToken $Token -BatchSize 2 -ThrottleLimit 1' 2500
        $records.Count | Should -BeGreaterThan 1
        $records[0..($records.Count - 2)] | ForEach-Object { $_.RecordType | Should -Be 'Processing' }
        $records[-1].RecordType | Should -Be 'Completed' -Because 'the bar must not stay on the screen after Ctrl+C'
    }

    It 'stops the subscription listing of -ForEachSubscription promptly' {
        $null = Assert-StopsPromptly 'Invoke-AzBatchRequest -ForEachSubscription -FollowNextLink -Url "/subscriptions/{subscriptionId}/resourceGroups?api-version=2021-04-01" -Endpoint $Endpoint -AccessToken $Token' 700
    }

    It 'streams 20,000 results in a runbook-like run with flat memory' {
        $ps = New-Shell @'
$ProgressPreference = 'SilentlyContinue'
$samples = New-Object System.Collections.Generic.List[long]
$n = 0
0..19999 | ForEach-Object { "/subscriptions/00000000-0000-4000-8000-00000000000$($_ % 6)?api-version=2022-12-01&n=$_" } |
    Invoke-AzBatchRequest -Endpoint $Endpoint -AccessToken $Token -ThrottleLimit 8 | ForEach-Object {
        $n++
        if ($n % 2000 -eq 0) { $samples.Add([GC]::GetTotalMemory($true)) }
    }
[pscustomobject]@{ Count = $n; Samples = $samples.ToArray() }
'@ $Fast.Url
        $r = $ps.Invoke()[0]
        $ps.Dispose()
        $r.Count | Should -Be 20000
        $growth = ($r.Samples | Measure-Object -Maximum).Maximum - $r.Samples[0]
        $growth | Should -BeLessThan 40MB
    }
}

Describe 'The module as users load it' {
    It 'imports in a fresh pwsh as scripts/build-module.sh builds it, and runs a request' {
        $cmd = "Import-Module '$ModuleDir/AzBatch.psd1'; (Invoke-AzBatchRequest -Request '$SubUrl' -Endpoint '$Endpoint' -AccessToken '$Token').Status; (Get-Module AzBatch).ExportedCmdlets.Keys"
        $out = & $Pwsh -NoProfile -NonInteractive -Command $cmd
        $out | Should -Be @('200', 'Invoke-AzBatchRequest')
    }

    It 'loads a library whose soname is not libazbatch.so' -Skip:(-not $OnLinux) {
        $patchelf = Get-Command patchelf -ErrorAction SilentlyContinue
        if (-not $patchelf) { Set-ItResult -Inconclusive -Because 'patchelf is not installed'; return }
        $copy = Join-Path ([IO.Path]::GetTempPath()) ('azbatch-soname-' + [guid]::NewGuid())
        Copy-Item $ModuleDir $copy -Recurse
        $lib = Get-ChildItem "$copy/runtimes/*/native/libazbatch.so"
        & patchelf --set-soname libsomething-else.so $lib.FullName
        (& readelf -d $lib.FullName | Out-String) | Should -Match 'libsomething-else'
        $cmd = "Import-Module '$copy/AzBatch.psd1'; (Invoke-AzBatchRequest -Request '$SubUrl' -Endpoint '$Endpoint' -AccessToken '$Token').Status"
        & $Pwsh -NoProfile -NonInteractive -Command $cmd | Should -Be '200'
        Remove-Item $copy -Recurse -Force
    }

    It 'names every path it tried when the library is missing' {
        $copy = Join-Path ([IO.Path]::GetTempPath()) ('azbatch-nolib-' + [guid]::NewGuid())
        Copy-Item $ModuleDir $copy -Recurse
        Remove-Item "$copy/runtimes" -Recurse -Force
        $cmd = "`$env:AZBATCH_NATIVE_PATH = '/nowhere/libazbatch.so'; Import-Module '$copy/AzBatch.psd1'; Invoke-AzBatchRequest -Request '/x' -AccessToken t -Endpoint http://127.0.0.1:9"
        $text = & $Pwsh -NoProfile -NonInteractive -Command $cmd 2>&1 | Out-String
        $text | Should -Match '/nowhere/libazbatch.so: no such file'
        $rid = [AzBatch.NativeLoader]::OperatingSystem() + '-' + [AzBatch.NativeLoader]::Architecture()
        $expected = [IO.Path]::Combine($copy, 'runtimes', $rid, 'native', [AzBatch.NativeLoader]::FileName())
        $text | Should -Match ([regex]::Escape($expected) + ': no such file')
        $text | Should -Not -Match 'path1'
        Remove-Item $copy -Recurse -Force
    }

    It 'chooses how to load the library for every (os, arch, framework, override)' {
        $root = [IO.Path]::Combine('m', 'AzBatch')
        foreach ($os in 'win', 'linux', 'osx') {
            foreach ($arch in 'x64', 'arm64', 'x86', 'arm', 's390x') {
                foreach ($fw in 'core', 'framework') {
                    foreach ($over in @($null, 'lib-file', 'lib-folder')) {
                        $folder = $over -eq 'lib-folder'
                        $plan = [AzBatch.NativeLoader]::Plan($os, $arch, $fw, $root, $over, $folder)
                        $what = "$os $arch $fw $over"
                        if ($arch -in 'x86', 'arm') {
                            $plan.Refusal | Should -Match 'needs a 64-bit' -Because $what
                            if ($os -eq 'win') { $plan.Refusal | Should -Match 'PowerShell' -Because $what }
                            $plan.Paths.Count | Should -Be 0 -Because $what
                            continue
                        }
                        if ($arch -eq 's390x') { $plan.Refusal | Should -Match 'no native library for the processor architecture s390x' -Because $what; continue }
                        if ($fw -eq 'framework' -and $os -ne 'win') { $plan.Refusal | Should -Match 'only on Windows' -Because $what; continue }
                        $plan.Refusal | Should -BeNullOrEmpty -Because $what
                        $plan.Method | Should -Be $(if ($fw -eq 'framework') { 'LoadLibraryW' } else { 'NativeLibrary' }) -Because $what
                        $file = @{ win = 'azbatch.dll'; linux = 'libazbatch.so'; osx = 'libazbatch.dylib' }[$os]
                        $shipped = [IO.Path]::Combine($root, 'runtimes', "$os-$arch", 'native', $file)
                        $expected = @(switch ($over) { 'lib-file' { 'lib-file' } 'lib-folder' { [IO.Path]::Combine('lib-folder', $file) } }) + $shipped
                        @($plan.Paths) | Should -Be $expected -Because $what
                        $plan.Rid | Should -Be "$os-$arch" -Because $what
                    }
                }
            }
        }
    }

    It 'says which platforms a package has when it lacks this one' {
        $copy = Join-Path ([IO.Path]::GetTempPath()) ('azbatch-otherrid-' + [guid]::NewGuid())
        Copy-Item $ModuleDir $copy -Recurse
        $rid = [AzBatch.NativeLoader]::OperatingSystem() + '-' + [AzBatch.NativeLoader]::Architecture()
        Rename-Item "$copy/runtimes/$rid" 'plan9-x64'
        $cmd = "Remove-Item Env:AZBATCH_NATIVE_PATH -ErrorAction SilentlyContinue; Import-Module '$copy/AzBatch.psd1'; Invoke-AzBatchRequest -Request '/x' -AccessToken t -Endpoint http://127.0.0.1:9"
        $text = & $Pwsh -NoProfile -NonInteractive -Command $cmd 2>&1 | Out-String
        $text | Should -Match "This AzBatch package has no native library for $rid \(it has plan9-x64\)"
        $text | Should -Not -Match 'build-module'
        Remove-Item $copy -Recurse -Force
    }

    It 'has a manifest whose FileList names every file of the module folder' {
        $m = Test-ModuleManifest "$ModuleDir/AzBatch.psd1"
        $files = Get-ChildItem $ModuleDir -Recurse -File | ForEach-Object { $_.FullName.Substring($ModuleDir.TrimEnd('/', '\').Length + 1) -replace '\\', '/' }
        $listed = @($m.FileList | ForEach-Object { $_.Substring($ModuleDir.TrimEnd('/', '\').Length + 1) -replace '\\', '/' })
        ($listed | Sort-Object) | Should -Be ($files | Sort-Object)
        $listed | Should -Contain 'LICENSE'
        @($listed | Where-Object { $_ -like 'runtimes/*/native/*' }).Count | Should -BeGreaterThan 0
    }

    It 'compiles nothing at import: the cmdlet lives in AzBatch.dll' {
        (Get-Command Invoke-AzBatchRequest).CommandType | Should -Be 'Cmdlet'
        (Get-Command Invoke-AzBatchRequest).DLL | Should -Match 'AzBatch.dll$'
        Get-ChildItem $ModuleDir -Filter *.cs -Recurse | Should -BeNullOrEmpty
    }

    It 'imports, removes and imports again in one session' {
        Remove-Module AzBatch
        Import-Module (Join-Path $ModuleDir 'AzBatch.psd1')
        (Invoke-AzBatchRequest -Request $SubUrl @Common).Status | Should -Be 200
    }

    It 'runs in two runspaces at once (ForEach-Object -Parallel)' -Skip:(-not $Core) {
        $statuses = 1..2 | ForEach-Object -ThrottleLimit 2 -Parallel {
            Import-Module (Join-Path $using:ModuleDir 'AzBatch.psd1')
            $urls = 0..19 | ForEach-Object { "/subscriptions/00000000-0000-4000-8000-000000000003?api-version=2022-12-01&n=$_" }
            @($urls | Invoke-AzBatchRequest -Endpoint $using:Endpoint -AccessToken $using:Token | Where-Object Succeeded).Count
        }
        $statuses | Should -Be @(20, 20)
    }
}

Describe 'Help' {
    It 'documents every parameter' {
        $help = Get-Help Invoke-AzBatchRequest -Full
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        $params = (Get-Command Invoke-AzBatchRequest).Parameters.Keys | Where-Object { $_ -notin $common }
        $documented = $help.parameters.parameter | ForEach-Object { $_.name }
        ($documented | Sort-Object) | Should -Be ($params | Sort-Object)
        $help.parameters.parameter | ForEach-Object { ($_.description | Out-String).Trim() | Should -Not -BeNullOrEmpty }
        @($help.examples.example).Count | Should -BeGreaterOrEqual 6
        $help.Synopsis | Should -Match 'batch endpoints'
    }

    It 'shows each parameter''s default (the numbers the library''s) and related links' {
        $info = [AzBatch.Batch]::Info() | ConvertFrom-Json
        $help = Get-Help Invoke-AzBatchRequest -Full
        $d = @{}
        $help.parameters.parameter | ForEach-Object { $d[$_.name] = "$($_.defaultValue)" }
        $d['BatchSize'] | Should -Be "$($info.limits.defaultBatchSize)"
        $d['ThrottleLimit'] | Should -Be "$($info.limits.defaultConcurrency)"
        $d['MaxAttempts'] | Should -Be "$($info.limits.defaultMaxAttempts)"
        $d['TimeoutSec'] | Should -Be "$($info.limits.defaultTimeoutSeconds)"
        $d['AttemptTimeoutSec'] | Should -Be "$($info.limits.defaultAttemptTimeoutSeconds)"
        $d['Environment'] | Should -Be $info.clouds[0].name
        $d['RetryNonIdempotent'] | Should -Be 'False'
        $d.Values | ForEach-Object { $_ | Should -Not -BeNullOrEmpty }
        $links = @($help.relatedLinks.navigationLink)
        $links.linkText | Should -Contain 'Invoke-MgGraphRequest'
        $links.linkText | Should -Contain 'Invoke-AzRestMethod'
        @($links | Where-Object uri -like '*docs/migrating.md').Count | Should -Be 1
        ($help | Out-String) | Should -Match 'RELATED LINKS'
    }

    It 'has examples that run against the emulator' {
        $examples = @((Get-Help Invoke-AzBatchRequest -Full).examples.example)
        Push-Location TestDrive:
        try {
            "UserPrincipalName,Department`n$User0,Platform`n$User1,Platform" | Set-Content users.csv
            foreach ($e in $examples) {
                $code = $e.code
                if ($code -match '-Identity') { continue }  # needs an Automation account's identity
                $PSDefaultParameterValues['Invoke-AzBatchRequest:Endpoint'] = $Endpoint
                $PSDefaultParameterValues['Invoke-AzBatchRequest:AccessToken'] = $Token
                $pw = 'Secret-1'; $skuId = 'c7df2760-2c81-4ef7-b578-5b5392b571df'; $groupId = $Group0; $userId = $User0
                $groupIds = @($Group0, '00000001-0000-4000-a000-000000000001')
                $subscriptionId = $Sub0
                try {
                    $out = & ([scriptblock]::Create($code)) 2>&1
                    $errors = @($out | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
                    $errors | Should -BeNullOrEmpty -Because $code
                } finally {
                    $PSDefaultParameterValues.Remove('Invoke-AzBatchRequest:Endpoint')
                    $PSDefaultParameterValues.Remove('Invoke-AzBatchRequest:AccessToken')
                }
            }
        } finally { Pop-Location }
    }
}

Describe 'The package (scripts/build-module.sh --package)' {
    BeforeAll {
        $script:Package = $env:AZBATCH_PACKAGE
    }

    It 'installs from a local repository into a temporary module path and runs in a fresh pwsh' {
        if (-not $Package) { Set-ItResult -Skipped -Because 'AZBATCH_PACKAGE names no package'; return }
        $feed = Join-Path ([IO.Path]::GetTempPath()) ('azbatch-feed-' + [guid]::NewGuid())
        $modules = Join-Path ([IO.Path]::GetTempPath()) ('azbatch-modules-' + [guid]::NewGuid())
        New-Item -ItemType Directory $feed, $modules | Out-Null
        Copy-Item $Package $feed
        $name = 'azbatch-test-' + [guid]::NewGuid().ToString('N').Substring(0, 8)
        Register-PSResourceRepository -Name $name -Uri $feed -Trusted
        try {
            Save-PSResource -Name AzBatch -Repository $name -Path $modules -TrustRepository -SkipDependencyCheck
            $manifest = Get-ChildItem $modules -Recurse -Filter AzBatch.psd1 | Select-Object -First 1
            $manifest | Should -Not -BeNullOrEmpty
            $m = Test-ModuleManifest $manifest.FullName
            $m.FileList | Where-Object { $_ -like '*runtimes*native*' } | Should -Not -BeNullOrEmpty
            $m.FileList | Where-Object { $_ -like '*LICENSE' } | Should -Not -BeNullOrEmpty
            $m.PrivateData.PSData.ProjectUri | Should -Not -BeNullOrEmpty
            Get-ChildItem $manifest.Directory -Recurse -Filter *.cs | Should -BeNullOrEmpty
            $cmd = "Import-Module '$($manifest.FullName)'; (Invoke-AzBatchRequest -Request '$SubUrl' -Endpoint '$Endpoint' -AccessToken '$Token').Status"
            & $Pwsh -NoProfile -NonInteractive -Command $cmd | Should -Be '200'
        } finally {
            Unregister-PSResourceRepository -Name $name
            Remove-Item $feed, $modules -Recurse -Force -ErrorAction SilentlyContinue
        }
    }

    It 'ships stripped libraries for linux-x64, linux-arm64 and win-x64' {
        if (-not $Package) { Set-ItResult -Skipped -Because 'AZBATCH_PACKAGE names no package'; return }
        (Get-Item $Package).Length | Should -BeLessThan 16MB
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [IO.Compression.ZipFile]::OpenRead($Package)
        try {
            $lib = $zip.Entries | Where-Object { $_.FullName -like 'runtimes/*/native/*' }
            @($lib.FullName | Sort-Object) | Should -Be @(
                'runtimes/linux-arm64/native/libazbatch.so',
                'runtimes/linux-x64/native/libazbatch.so',
                'runtimes/win-x64/native/azbatch.dll')
            $lib | ForEach-Object { $_.Length | Should -BeLessThan 15MB }
        } finally { $zip.Dispose() }
    }
}
