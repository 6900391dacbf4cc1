# The module's own cost per request, measured side by side in one run: the
# same N requests against the emulator at zero latency, once through
# `azbatch run` (the engine alone) and once through Invoke-AzBatchRequest in a
# fresh pwsh, runbook-like ($ProgressPreference = 'SilentlyContinue', output
# piped on). The difference divided by N is what the module adds; the pwsh
# process's peak memory is read from the kernel (VmHWM).
#
# usage: scripts/pwsh -NoProfile -File powershell/bench/Measure-ModuleCost.ps1 [-Counts 20000,100000] [-Repeat 2]
#        (after `cargo build --release -p azbatch-cli -p azbatch-emulator` and
#        `scripts/build-module.sh`, which are run here when missing)
param(
    [int[]]$Counts = @(20000, 100000),
    [int]$Subscriptions = 1000,
    [string]$Module = '',
    # Each figure is the fastest of this many runs (timings on a small shared machine are noisy).
    [int]$Repeat = 2,
    [switch]$Json
)
Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$repo = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$cli = Join-Path $repo 'target/release/azbatch'
$emulatorBin = Join-Path $repo 'target/release/azbatch-emulator'
if (-not (Test-Path $cli) -or -not (Test-Path $emulatorBin)) {
    & cargo build --quiet --release -p azbatch-cli -p azbatch-emulator
}
if (-not $Module) {
    $Module = Join-Path $repo 'target/module/AzBatch'
    if (-not (Test-Path (Join-Path $Module 'AzBatch.psd1'))) { & bash (Join-Path $repo 'scripts/build-module.sh') | Out-Null }
}
$pwsh = Join-Path $repo 'scripts/pwsh'
$token = 'bench-token'
$work = Join-Path ([IO.Path]::GetTempPath()) ('azbatch-bench-' + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $work | Out-Null
$emuOut = Join-Path $work 'emulator.out'
$emu = Start-Process -FilePath $emulatorBin -ArgumentList @('--subscriptions', "$Subscriptions", '--latency-ms', '0', '--token', $token) `
    -RedirectStandardOutput $emuOut -PassThru -NoNewWindow
try {
    $deadline = (Get-Date).AddSeconds(10)
    while (-not (Get-Content $emuOut -ErrorAction SilentlyContinue) -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 50 }
    $endpoint = (Get-Content $emuOut | Select-Object -First 1).Trim()
    # The module in a process of its own, so its peak memory is its own; each
    # result goes to $Consumer (a script block's text, counting in $ok).
    function Measure-Module([string]$RequestsFile, [string]$Consumer) {
        $script = @"
`$ProgressPreference = 'SilentlyContinue'
Import-Module '$Module/AzBatch.psd1'
`$urls = [IO.File]::ReadAllLines('$RequestsFile') | ForEach-Object { `$_.Trim('"') }
# The first call in a session pays for loading and compiling the module's code
# once: measured apart, so the figure below is the cost per request.
`$cold = [Diagnostics.Stopwatch]::StartNew()
`$urls[0..99] | Invoke-AzBatchRequest -Endpoint '$endpoint' -AccessToken '$token' | Out-Null
`$coldSeconds = `$cold.Elapsed.TotalSeconds
`$sw = [Diagnostics.Stopwatch]::StartNew()
`$ok = 0
`$urls | Invoke-AzBatchRequest -Endpoint '$endpoint' -AccessToken '$token' -ThrottleLimit 16 | ForEach-Object { $Consumer }
`$seconds = `$sw.Elapsed.TotalSeconds
`$hwm = (Get-Content /proc/self/status | Where-Object { `$_ -like 'VmHWM:*' }) -replace '[^0-9]', ''
'{0} {1} {2} {3}' -f `$seconds, `$ok, `$hwm, `$coldSeconds
"@
        $out = & $pwsh -NoProfile -NonInteractive -Command $script
        $parts = ($out | Select-Object -Last 1) -split ' '
        [pscustomobject]@{ Seconds = [double]$parts[0]; Ok = [int]$parts[1]; PeakKb = [double]$parts[2]; ColdSeconds = [double]$parts[3] }
    }
    $rows = foreach ($n in $Counts) {
        $lines = New-Object 'System.Collections.Generic.List[string]' $n
        for ($i = 0; $i -lt $n; $i++) {
            $lines.Add(('"/subscriptions/00000000-0000-4000-8000-{0:D12}?api-version=2022-12-01"' -f ($i % $Subscriptions)))
        }
        $requestsFile = Join-Path $work "requests-$n.jsonl"
        [IO.File]::WriteAllLines($requestsFile, $lines)

        $cliSeconds = (1..$Repeat | ForEach-Object {
                $sw = [Diagnostics.Stopwatch]::StartNew()
                & $cli run --endpoint $endpoint --token $token --concurrency 16 $requestsFile 2>$null | Out-Null
                $sw.Elapsed.TotalSeconds
            } | Measure-Object -Minimum).Minimum
        $status = 1..$Repeat | ForEach-Object { Measure-Module $requestsFile 'if ($_.Succeeded) { $ok++ }' } | Sort-Object Seconds | Select-Object -First 1
        # Bodies are read from JSON when first asked for: reading every one costs more.
        $bodies = 1..$Repeat | ForEach-Object { Measure-Module $requestsFile 'if ($_.Body.displayName) { $ok++ }' } | Sort-Object Seconds | Select-Object -First 1
        [pscustomobject]@{
            requests            = $n
            cliSeconds          = [math]::Round($cliSeconds, 2)
            moduleSeconds       = [math]::Round($status.Seconds, 2)
            succeeded           = $status.Ok
            moduleUsPerRequest  = [math]::Round(1e6 * ($status.Seconds - $cliSeconds) / $n, 1)
            pwshPeakRssMb       = [math]::Round($status.PeakKb / 1024, 0)
            firstCallSeconds    = [math]::Round($status.ColdSeconds, 2)
            usReadingBodies     = [math]::Round(1e6 * ($bodies.Seconds - $cliSeconds) / $n, 1)
            peakRssMbBodies     = [math]::Round($bodies.PeakKb / 1024, 0)
            bodiesRead          = $bodies.Ok
        }
    }
    $rows = @($rows)
    if ($Json) { $rows | ConvertTo-Json } else { $rows | Format-Table -AutoSize | Out-String -Width 200 }
    if ($rows.Count -ge 2) {
        # What each request past the first run adds (the .NET JIT's warm-up and other fixed costs cancel out).
        $a = $rows[0]; $b = $rows[-1]
        $marginal = 1e6 * (($b.moduleSeconds - $b.cliSeconds) - ($a.moduleSeconds - $a.cliSeconds)) / ($b.requests - $a.requests)
        'marginal module cost: {0:N1} us per request (from {1} to {2} requests)' -f $marginal, $a.requests, $b.requests
    }
} finally {
    Stop-Process -Id $emu.Id -ErrorAction SilentlyContinue
    Remove-Item $work -Recurse -Force -ErrorAction SilentlyContinue
}
