# Runs the Pester suite (powershell/tests/*.Tests.ps1) and fails when any test
# fails or when no test ran at all. Pester prints its own summary
# ("Tests Passed: N, Failed: 0, ...").
#
# usage: AZBATCH_MODULE=<module folder> AZBATCH_EMULATOR=<emulator binary> \
#          scripts/pwsh -NoProfile -File powershell/tests/Run-Pester.ps1
$ErrorActionPreference = 'Stop'
Import-Module Pester -MinimumVersion 5.0
$config = New-PesterConfiguration
$config.Run.Path = $PSScriptRoot
$config.Run.PassThru = $true
$config.Output.Verbosity = 'Detailed'
$config.Output.RenderMode = 'Plaintext'
$result = Invoke-Pester -Configuration $config
if ($result.PassedCount -eq 0) { [Console]::Error.WriteLine('Pester ran no test'); exit 1 }
if ($result.FailedCount -gt 0 -or $result.Result -ne 'Passed') { exit 1 }
# Where every test can run (scripts/test.sh sets AZBATCH_NO_SKIPS), nothing may
# quietly not run: a missing tool is a failure there. (The hosted runners skip
# the tests that need Linux tools, a Unix shell or PowerShell 7.)
if ($env:AZBATCH_NO_SKIPS -and ($result.SkippedCount + $result.InconclusiveCount) -gt 0) {
    [Console]::Error.WriteLine("Pester: $($result.SkippedCount) skipped and $($result.InconclusiveCount) inconclusive tests in CI")
    exit 1
}
