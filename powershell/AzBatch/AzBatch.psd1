@{
    RootModule           = 'AzBatch.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '6f1c2b1e-6a0b-4c51-9f3e-2d7c0a4b9e11'
    Author               = 'AzBatch contributors'
    CompanyName          = 'AzBatch'
    Copyright            = '(c) AzBatch contributors. MIT License.'
    Description          = 'Fan out Azure Resource Manager and Microsoft Graph calls through their batch endpoints: chunking, parallel batches, per-item retries with Retry-After, 202 polling, dependsOn with references, nextLink paging, streamed results.'
    PowerShellVersion    = '5.1'
    CompatiblePSEditions = @('Desktop', 'Core')
    FunctionsToExport    = @()
    CmdletsToExport      = @('Invoke-AzBatchRequest')
    VariablesToExport    = @()
    AliasesToExport      = @()
    FormatsToProcess     = @('AzBatch.Format.ps1xml')
    FileList             = @('AzBatch.psd1', 'AzBatch.dll', 'AzBatch.Format.ps1xml', 'en-US/AzBatch.dll-Help.xml')
    PrivateData          = @{
        PSData = @{
            Tags         = @('Azure', 'ARM', 'ResourceManager', 'Graph', 'MicrosoftGraph', 'Batch', 'REST', 'Automation', 'Runbook', 'PSEdition_Desktop', 'PSEdition_Core', 'Windows', 'Linux', 'MacOS')
            LicenseUri   = 'https://github.com/azbatch/azbatch/blob/main/LICENSE'
            ProjectUri   = 'https://github.com/azbatch/azbatch'
            ReleaseNotes = 'First release: ARM and Graph batching with retries, paging, dependencies and references.'
        }
    }
}
