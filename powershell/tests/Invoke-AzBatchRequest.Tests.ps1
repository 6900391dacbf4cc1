# Pester 5 tests of Invoke-AzBatchRequest against the AzBatch emulator.
# Run by scripts/test.sh where pwsh exists:
#   pwsh -NoProfile -Command "Invoke-Pester -Path powershell/tests -Output Detailed -CI"
# Expects AZBATCH_MODULE (the built module folder) and AZBATCH_EMULATOR (the
# emulator binary); both default to this repository's debug build.

BeforeAll {
    $repo = Resolve-Path (Join-Path $PSScriptRoot '../..')
    $module = $env:AZBATCH_MODULE
    if (-not $module) { $module = Join-Path $repo 'target/module/AzBatch' }
    $emulator = $env:AZBATCH_EMULATOR
    if (-not $emulator) { $emulator = Join-Path $repo 'target/debug/azbatch-emulator' }

    $script:Token = 'pester-token-7c1e'
    $out = New-TemporaryFile
    $script:Emulator = Start-Process -FilePath $emulator -ArgumentList @('--subscriptions', '6', '--token', $script:Token) `
        -RedirectStandardOutput $out.FullName -PassThru -NoNewWindow
    $deadline = (Get-Date).AddSeconds(10)
    while (-not (Get-Content $out.FullName -ErrorAction SilentlyContinue) -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 100 }
    $script:Endpoint = (Get-Content $out.FullName | Select-Object -First 1).Trim()
    Import-Module (Join-Path $module 'AzBatch.psd1') -Force
    $script:Common = @{ Endpoint = $script:Endpoint; AccessToken = $script:Token; Confirm = $false }
    $script:Sub0 = '00000000-0000-4000-8000-000000000000'
}

AfterAll {
    if ($script:Emulator) { Stop-Process -Id $script:Emulator.Id -ErrorAction SilentlyContinue }
    Remove-Module AzBatch -ErrorAction SilentlyContinue
}

Describe 'Invoke-AzBatchRequest against ARM' {
    It 'lists PIM eligibility in every subscription' {
        $url = '/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01'
        $results = @(Invoke-AzBatchRequest -ForEachSubscription -Url $url @Common)
        $results.Count | Should -Be 6
        $results | ForEach-Object { $_.Status | Should -Be 200 }
        $results[0].PSObject.TypeNames | Should -Contain 'AzBatch.Response'
        @($results | ForEach-Object { $_.Body.value }).Count | Should -BeGreaterThan 5
    }

    It 'takes strings and hashtables from the pipeline and follows next links' {
        $results = @(
            "/subscriptions/$Sub0`?api-version=2022-12-01"
            @{ Name = 'accounts'; Url = "/subscriptions/00000000-0000-4000-8000-000000000005/providers/Microsoft.Batch/batchAccounts?api-version=2024-07-01" }
        ) | Invoke-AzBatchRequest -FollowNextLink @Common
        $results.Count | Should -Be 2
        $accounts = $results | Where-Object Name -eq 'accounts'
        @($accounts.Body.value).Count | Should -Be 5
        $accounts.Pages | Should -Be 3
    }

    It 'lists writes with -WhatIf and sends nothing' {
        $rg = "/subscriptions/$Sub0/resourcegroups/whatif?api-version=2021-04-01"
        $out = @{ Method = 'PUT'; Url = $rg; Body = @{ location = 'westeurope' } } |
            Invoke-AzBatchRequest -Endpoint $Endpoint -AccessToken $Token -WhatIf
        $out | Should -BeNullOrEmpty
        $check = Invoke-AzBatchRequest -Request $rg -Endpoint $Endpoint -AccessToken $Token -ErrorAction SilentlyContinue
        $check.Status | Should -Be 404
    }

    It 'writes failures as non-terminating errors that carry the response' {
        $missing = "/subscriptions/$Sub0/resourcegroups/missing?api-version=2021-04-01"
        $results = Invoke-AzBatchRequest -Request $missing, "/subscriptions/$Sub0`?api-version=2022-12-01" @Common -ErrorVariable failed -ErrorAction SilentlyContinue
        @($results).Count | Should -Be 2
        $failed.Count | Should -Be 1
        $failed[0].TargetObject.Status | Should -Be 404
        $failed[0].ErrorDetails.Message | Should -Match 'ResourceGroupNotFound'
        @($results | Where-Object Succeeded).Count | Should -Be 1
    }

    It 'writes JSON text with -Raw' {
        $raw = Invoke-AzBatchRequest -Request "/subscriptions/$Sub0`?api-version=2022-12-01" -Raw @Common
        ($raw | ConvertFrom-Json).status | Should -Be 200
    }

    It 'takes the token as a SecureString and never writes it' {
        $secure = ConvertTo-SecureString $Token -AsPlainText -Force
        $all = Invoke-AzBatchRequest -Request "/subscriptions/$Sub0`?api-version=2022-12-01" -Endpoint $Endpoint -AccessToken $secure -Verbose -Debug 4>&1 5>&1 | Out-String
        $all | Should -Not -Match $Token
        $all | Should -Match '200'
    }

    It 'refuses a request for another host, naming it' {
        { Invoke-AzBatchRequest -Request @{ Id = 'evil'; Url = 'https://evil.example/x' } @Common } | Should -Throw '*evil*url*'
    }
}

Describe 'Invoke-AzBatchRequest against Graph' {
    It 'onboards a user with dependencies and references' {
        $user = '{{newUser.body.id}}'
        $results = @(
            @{ Id = 'newUser'; Method = 'POST'; Url = '/users'; Body = @{ displayName = 'Pester'; userPrincipalName = 'pester@contoso.example' } }
            @{ Id = 'license'; Method = 'POST'; Url = "/users/$user/assignLicense"; DependsOn = 'newUser'; Body = @{ addLicenses = @(@{ skuId = 'c7df2760-2c81-4ef7-b578-5b5392b571df' }); removeLicenses = @() } }
            @{ Id = 'group'; Method = 'POST'; Url = '/groups/00000000-0000-4000-a000-000000000000/members/$ref'; DependsOn = 'newUser'; Body = @{ '@odata.id' = "https://graph.microsoft.com/v1.0/directoryObjects/$user" } }
        ) | Invoke-AzBatchRequest -Api Graph @Common
        $results.Count | Should -Be 3
        ($results | Where-Object Name -eq 'license').Status | Should -Be 200
        ($results | Where-Object Name -eq 'group').Status | Should -Be 204
    }

    It 'hands out non-JSON answers as base64' {
        $photo = Invoke-AzBatchRequest -Api Graph -Request '/users/00000000-0000-4000-9000-000000000000/photo/$value' @Common
        $photo.BodyEncoding | Should -Be 'base64'
        [Convert]::FromBase64String($photo.Body)[0] | Should -Be 0xFF
    }
}

Describe 'Loading the native library' {
    It 'names every path it tried when nothing loads' {
        $copy = Join-Path ([IO.Path]::GetTempPath()) ("azbatch-nolib-" + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $copy | Out-Null
        Copy-Item (Join-Path (Split-Path (Get-Module AzBatch).Path) '*') $copy -Exclude runtimes
        $cmd = "`$env:AZBATCH_NATIVE_PATH = '/nowhere/libazbatch.so'; Import-Module '$copy/AzBatch.psd1'; Invoke-AzBatchRequest -Request '/x' -AccessToken t -Endpoint http://127.0.0.1:9"
        $text = & pwsh -NoProfile -Command $cmd 2>&1 | Out-String
        $text | Should -Match 'nowhere'
        $text | Should -Match 'runtimes'
        Remove-Item $copy -Recurse -Force
    }
}
