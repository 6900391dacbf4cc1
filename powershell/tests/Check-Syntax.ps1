# Parses every .ps1/.psm1/.psd1 of the repository with PowerShell's own parser
# and fails on any syntax error (file:line:column: message). The module's own
# files must also be Windows PowerShell 5.1 syntax: no ternary `a ? b : c`,
# no `??` / `??=`, no `&&` / `||` pipeline chains, no `ForEach-Object -Parallel`
# and no `ConvertFrom-Json -AsHashtable` (all PowerShell 7 only). Finally
# Test-ModuleManifest checks the manifest. Each check first proves on a broken
# snippet that it can fail.
#
# usage: scripts/pwsh -NoProfile -File powershell/tests/Check-Syntax.ps1 [-Module target/module/AzBatch]
#        (-Module: the folder scripts/build-module.sh built, whose manifest is tested)
param([string]$Module = '')
Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$repo = Resolve-Path (Join-Path $PSScriptRoot '../..')

function Get-SyntaxError([string]$Text, [string]$Name) {
    $tokens = $null; $errors = $null
    [void][System.Management.Automation.Language.Parser]::ParseInput($Text, $Name, [ref]$tokens, [ref]$errors)
    foreach ($e in $errors) {
        '{0}:{1}:{2}: {3}' -f $Name, $e.Extent.StartLineNumber, $e.Extent.StartColumnNumber, $e.Message
    }
}

function Get-Not51Syntax([string]$Text, [string]$Name) {
    $tokens = $null; $errors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseInput($Text, $Name, [ref]$tokens, [ref]$errors)
    $found = $ast.FindAll({
            param($n)
            $n -is [System.Management.Automation.Language.TernaryExpressionAst] -or
            $n -is [System.Management.Automation.Language.PipelineChainAst] -or
            ($n -is [System.Management.Automation.Language.BinaryExpressionAst] -and $n.Operator -eq 'QuestionQuestion') -or
            ($n -is [System.Management.Automation.Language.AssignmentStatementAst] -and $n.Operator -eq 'QuestionQuestionEquals') -or
            ($n -is [System.Management.Automation.Language.CommandParameterAst] -and (
                ($n.ParameterName -eq 'Parallel' -and $n.Parent.GetCommandName() -in 'ForEach-Object', '%', 'foreach') -or
                ($n.ParameterName -eq 'AsHashtable' -and $n.Parent.GetCommandName() -eq 'ConvertFrom-Json')))
        }, $true)
    foreach ($n in $found) {
        '{0}:{1}:{2}: not Windows PowerShell 5.1 syntax: {3}' -f $Name, $n.Extent.StartLineNumber, $n.Extent.StartColumnNumber, $n.Extent.Text
    }
}

# The checks must be able to fail.
if (-not (Get-SyntaxError 'function f { if ($x) { 1 }' 'broken.ps1')) { throw 'a missing brace went unnoticed' }
foreach ($snippet in @('$a ? 1 : 2', '$a ?? 1', '$a ??= 1', 'a && b', '1..3 | ForEach-Object -Parallel { $_ }', '$j | ConvertFrom-Json -AsHashtable')) {
    if (-not (Get-Not51Syntax $snippet 'seven.ps1')) { throw "PowerShell 7 syntax went unnoticed: $snippet" }
}
if (Get-Not51Syntax 'if ($a) { 1 } else { 2 }; $b = @{ x = 1 }; 1..3 | ForEach-Object { $_ }' 'five.ps1') { throw '5.1 syntax was refused' }

$problems = New-Object System.Collections.Generic.List[string]
$files = Get-ChildItem -Path $repo -Recurse -File -Include *.ps1, *.psm1, *.psd1 |
    Where-Object { $_.FullName -notmatch '[\\/](target|\.git|\.venv)[\\/]' }
foreach ($f in $files) {
    $text = [System.IO.File]::ReadAllText($f.FullName)
    $rel = $f.FullName.Substring($repo.Path.Length + 1)
    foreach ($p in Get-SyntaxError $text $rel) { $problems.Add($p) }
    if ($rel -like 'powershell*AzBatch*' -and $rel -notlike '*tests*') {
        foreach ($p in Get-Not51Syntax $text $rel) { $problems.Add($p) }
    }
}
Write-Output ('parsed {0} files' -f @($files).Count)

if (-not $Module) { $Module = Join-Path $repo 'target/module/AzBatch' }
try {
    $m = Test-ModuleManifest -Path (Join-Path $Module 'AzBatch.psd1') -ErrorAction Stop
    Write-Output ('manifest: {0} {1}, exports {2}' -f $m.Name, $m.Version, (($m.ExportedCmdlets.Keys) -join ', '))
    if (-not $m.ExportedCmdlets.ContainsKey('Invoke-AzBatchRequest')) { $problems.Add("$Module/AzBatch.psd1: exports no Invoke-AzBatchRequest") }
} catch {
    $problems.Add("$Module/AzBatch.psd1: Test-ModuleManifest: $($_.Exception.Message)")
}

foreach ($p in $problems) { [Console]::Error.WriteLine($p) }
if ($problems.Count -gt 0) { Write-Output "$($problems.Count) problems"; exit 1 }
Write-Output 'no problems'
