"""Checks that the PowerShell module agrees with the rest of AzBatch:

- every DllImport of the azbatch library in AzBatchNative.cs names a function of
  include/azbatch.h with the same number of parameters, and every function of
  the header is declared;
- AzBatch.psd1's ModuleVersion is the crate's version, FunctionsToExport is an
  explicit list, and both editions and 5.1 are declared;
- every parameter of Invoke-AzBatchRequest has a .PARAMETER help entry.

Each check first proves on altered input that it can fail."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def header_functions(text: str) -> dict:
    out = {}
    for m in re.finditer(r"^[A-Za-z_][\w\s\*]*?\b(batch_\w+)\(([^)]*)\);", text, re.M):
        params = m.group(2).strip()
        out[m.group(1)] = 0 if params in ("", "void") else params.count(",") + 1
    return out


def dll_imports(text: str) -> dict:
    out = {}
    pattern = r"\[DllImport\(Library(?P<attrs>[^\]]*)\)\]\s*public static extern [\w\.]+ (?P<name>\w+)\((?P<params>[^)]*)\);"
    for m in re.finditer(pattern, text):
        entry = re.search(r'EntryPoint\s*=\s*"(\w+)"', m.group("attrs"))
        name = entry.group(1) if entry else m.group("name")
        params = m.group("params").strip()
        out[name] = 0 if not params else params.count(",") + 1
    return out


def interop_problems(header: str, cs: str) -> list:
    h, c = header_functions(header), dll_imports(cs)
    problems = [f"{n}: declared in AzBatchNative.cs but not in azbatch.h" for n in c if n not in h]
    problems += [f"{n}: in azbatch.h but not declared in AzBatchNative.cs" for n in h if n not in c]
    problems += [f"{n}: {c[n]} parameters in C#, {h[n]} in azbatch.h" for n in c if n in h and c[n] != h[n]]
    if not h:
        problems.append("no functions found in azbatch.h")
    return problems


def manifest_problems(psd1: str, version: str) -> list:
    problems = []
    m = re.search(r"ModuleVersion\s*=\s*'([^']+)'", psd1)
    if not m or m.group(1) != version:
        problems.append(f"ModuleVersion is {m.group(1) if m else 'missing'}, the crate is {version}")
    exports = re.search(r"FunctionsToExport\s*=\s*@\(([^)]*)\)", psd1)
    if not exports or "*" in exports.group(1) or "Invoke-AzBatchRequest" not in exports.group(1):
        problems.append("FunctionsToExport must list Invoke-AzBatchRequest explicitly")
    if not re.search(r"CompatiblePSEditions\s*=\s*@\('Desktop',\s*'Core'\)", psd1):
        problems.append("CompatiblePSEditions must be 'Desktop','Core'")
    if not re.search(r"PowerShellVersion\s*=\s*'5\.1'", psd1):
        problems.append("PowerShellVersion must be '5.1'")
    return problems


def help_problems(psm1: str) -> list:
    fn = psm1[psm1.index("function Invoke-AzBatchRequest"):]
    help_text = fn[: fn.index("#>")]
    documented = set(re.findall(r"^\s*\.PARAMETER (\w+)", help_text, re.M))
    block = fn[fn.index("param(") :]
    depth, end = 0, 0
    for i, ch in enumerate(block):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch == ")":
            end = i
            break
    params = set(re.findall(r"\]\s*\$(\w+)", block[:end]))
    problems = [f"-{p} has no .PARAMETER help" for p in sorted(params - documented)]
    problems += [f".PARAMETER {p} documents no parameter" for p in sorted(documented - params)]
    if len(re.findall(r"^\s*\.EXAMPLE", help_text, re.M)) < 6:
        problems.append("fewer than six .EXAMPLEs")
    if not params:
        problems.append("no parameters found")
    return problems


def main() -> int:
    header = (ROOT / "include/azbatch.h").read_text()
    cs = (ROOT / "powershell/AzBatch/AzBatchNative.cs").read_text()
    psd1 = (ROOT / "powershell/AzBatch/AzBatch.psd1").read_text()
    psm1 = (ROOT / "powershell/AzBatch/AzBatch.psm1").read_text()
    version = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)

    # The checks must be able to fail.
    assert interop_problems(header, cs.replace(", out IntPtr errorOut);", ");", 1)), "a missing parameter went unnoticed"
    assert interop_problems(header, cs.replace('EntryPoint = "batch_cancel"', 'EntryPoint = "batch_stop"')), "a renamed import went unnoticed"
    assert interop_problems(header.replace("void batch_string_free(", "void batch_string_release("), cs), "a missing import went unnoticed"
    assert manifest_problems(psd1.replace(version, version + ".1"), version), "a version mismatch went unnoticed"
    assert help_problems(psm1.replace(".PARAMETER Raw", ".PARAMETER Rawish")), "an undocumented parameter went unnoticed"

    checks = {
        "interop class matches azbatch.h": interop_problems(header, cs),
        "manifest": manifest_problems(psd1, version),
        "help covers every parameter": help_problems(psm1),
    }
    failed = 0
    for name, problems in checks.items():
        print(f"{'FAIL' if problems else 'ok  '} {name}")
        for p in problems:
            print(f"     {p}", file=sys.stderr)
        failed += bool(problems)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
