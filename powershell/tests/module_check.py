"""Checks that the PowerShell module agrees with the rest of AzBatch:

- every DllImport of the azbatch library in powershell/src/Native.cs names a function of
  include/azbatch.h with the same return and parameter types (as they marshal),
  every function of the header is declared, the Status enum has the header's
  AzBatchStatus values, and Progress has AzBatchProgress's fields in order;
- AzBatch.psd1's ModuleVersion is the crate's version, its root module is the
  compiled AzBatch.dll, CmdletsToExport is an explicit list, and both editions
  and 5.1 are declared.
(The help is checked against the cmdlet's parameters where it is generated,
powershell/help/make-maml.py, and in the Pester suite.)

Each check first proves on altered input that it can fail."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


# How each C type of azbatch.h travels in powershell/src/Native.cs's DllImports.
C_TO_CS = {
    "const char *": "byte[]",
    "char **": "out IntPtr",
    "char *": "IntPtr",
    "struct AzBatch *": "BatchHandle",
    "const struct AzBatch *": "BatchHandle",
    "struct AzBatch **": "out BatchHandle",
    "struct AzBatchProgress *": "out Progress",
    "uint32_t": "uint",
    "uint64_t": "ulong",
    "AzBatchStatus": "Status",
    "void": "void",
}
# batch_free takes the raw pointer: it is called from the SafeHandle's release.
RAW_HANDLE = {("batch_free", 0): "IntPtr"}


def c_type(decl: str) -> str:
    """The type of a C parameter declaration (`const char *options_json`)."""
    decl = " ".join(decl.split())
    m = re.match(r"(.*?)(\w+)$", decl)
    t = m.group(1).strip() if m else decl
    return re.sub(r"\s*\*", " *", t).replace("* *", "**").strip()


def header_functions(text: str) -> dict:
    """name -> (return type, [parameter types])."""
    out = {}
    for m in re.finditer(r"^([A-Za-z_][\w\s\*]*?)\b(batch_\w+)\(([^)]*)\);", text, re.M):
        params = m.group(3).strip()
        types = [] if params in ("", "void") else [c_type(p) for p in params.split(",")]
        out[m.group(2)] = (c_type(m.group(1) + " x"), types)
    return out


def dll_imports(text: str) -> dict:
    """name -> (return type, [parameter types])."""
    out = {}
    pattern = r"\[DllImport\(Library(?P<attrs>[^\]]*)\)\]\s*public static extern (?P<ret>[\w\.\[\]]+) (?P<name>\w+)\((?P<params>[^)]*)\);"
    for m in re.finditer(pattern, text):
        entry = re.search(r'EntryPoint\s*=\s*"(\w+)"', m.group("attrs"))
        name = entry.group(1) if entry else m.group("name")
        params = m.group("params").strip()
        types = [] if not params else [" ".join(p.split()[:-1]) for p in params.split(",")]
        out[name] = (m.group("ret"), types)
    return out


def pascal(snake: str) -> str:
    return "".join(w.capitalize() for w in snake.lower().split("_"))


def header_statuses(text: str) -> dict:
    body = re.search(r"enum AzBatchStatus[^{]*\{(.*?)\};", text, re.S).group(1)
    return {pascal(re.sub(r"^AZBATCH_(ERR_)?", "", n)): int(v) for n, v in re.findall(r"(AZBATCH_\w+) = (-?\d+)", body)}


def cs_statuses(text: str) -> dict:
    body = re.search(r"public enum Status : int\s*\{(.*?)\}", text, re.S).group(1)
    return {n: int(v) for n, v in re.findall(r"(\w+) = (-?\d+)", body)}


def header_progress(text: str) -> list:
    body = re.search(r"typedef struct AzBatchProgress \{(.*?)\} AzBatchProgress;", text, re.S).group(1)
    return [(pascal(n), t) for t, n in re.findall(r"^\s*(\w+) (\w+);", body, re.M)]


def cs_progress(text: str) -> list:
    body = re.search(r"public struct Progress\s*\{(.*?)\}", text, re.S).group(1)
    cs_to_c = {"ulong": "uint64_t", "uint": "uint32_t", "long": "int64_t", "int": "int32_t"}
    return [(n, cs_to_c.get(t, t)) for t, n in re.findall(r"public (\w+) (\w+);", body)]


def interop_problems(header: str, cs: str) -> list:
    h, c = header_functions(header), dll_imports(cs)
    problems = [f"{n}: declared in powershell/src/Native.cs but not in azbatch.h" for n in c if n not in h]
    problems += [f"{n}: in azbatch.h but not declared in powershell/src/Native.cs" for n in h if n not in c]
    for name in sorted(set(h) & set(c)):
        (h_ret, h_params), (c_ret, c_params) = h[name], c[name]
        want_ret = "IntPtr" if h_ret == "const char *" else C_TO_CS.get(h_ret, f"<{h_ret}>")
        if c_ret != want_ret:
            problems.append(f"{name}: returns {c_ret} in C#, {h_ret} ({want_ret}) in azbatch.h")
        if len(h_params) != len(c_params):
            problems.append(f"{name}: {len(c_params)} parameters in C#, {len(h_params)} in azbatch.h")
            continue
        for i, (ht, ct) in enumerate(zip(h_params, c_params)):
            want = RAW_HANDLE.get((name, i), C_TO_CS.get(ht, f"<{ht}>"))
            if ct != want:
                problems.append(f"{name}: parameter {i + 1} is {ct} in C#, {ht} ({want}) in azbatch.h")
    if not h:
        problems.append("no functions found in azbatch.h")
    hs, cs_s = header_statuses(header), cs_statuses(cs)
    if hs != cs_s:
        problems.append(f"statuses differ: azbatch.h {sorted(hs.items())}, C# {sorted(cs_s.items())}")
    hp, cp = header_progress(header), cs_progress(cs)
    if hp != cp or not hp:
        problems.append(f"AzBatchProgress differs: azbatch.h {hp}, C# {cp}")
    return problems


def manifest_problems(psd1: str, version: str) -> list:
    problems = []
    m = re.search(r"ModuleVersion\s*=\s*'([^']+)'", psd1)
    if not m or m.group(1) != version:
        problems.append(f"ModuleVersion is {m.group(1) if m else 'missing'}, the crate is {version}")
    if not re.search(r"RootModule\s*=\s*'AzBatch\.dll'", psd1):
        problems.append("RootModule must be the compiled AzBatch.dll")
    exports = re.search(r"CmdletsToExport\s*=\s*@\(([^)]*)\)", psd1)
    if not exports or "*" in exports.group(1) or "Invoke-AzBatchRequest" not in exports.group(1):
        problems.append("CmdletsToExport must list Invoke-AzBatchRequest explicitly")
    if not re.search(r"CompatiblePSEditions\s*=\s*@\('Desktop',\s*'Core'\)", psd1):
        problems.append("CompatiblePSEditions must be 'Desktop','Core'")
    if not re.search(r"PowerShellVersion\s*=\s*'5\.1'", psd1):
        problems.append("PowerShellVersion must be '5.1'")
    return problems


def main() -> int:
    header = (ROOT / "include/azbatch.h").read_text()
    cs = (ROOT / "powershell/src/Native.cs").read_text()
    psd1 = (ROOT / "powershell/AzBatch/AzBatch.psd1").read_text()
    version = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)

    # The checks must be able to fail.
    assert interop_problems(header, cs.replace(", out IntPtr errorOut);", ");", 1)), "a missing parameter went unnoticed"
    assert interop_problems(header, cs.replace('EntryPoint = "batch_cancel"', 'EntryPoint = "batch_stop"')), "a renamed import went unnoticed"
    assert interop_problems(header.replace("void batch_string_free(", "void batch_string_release("), cs), "a missing import went unnoticed"
    assert interop_problems(header, cs.replace("uint timeoutMs", "int timeoutMs")), "a parameter of the wrong type went unnoticed"
    assert interop_problems(header, cs.replace("InvalidJson = -3", "InvalidJson = -9")), "a status with the wrong number went unnoticed"
    assert interop_problems(header, cs.replace("public ulong Retries;\n        public ulong InFlight;", "public ulong InFlight;\n        public ulong Retries;")), "progress fields out of order went unnoticed"
    assert interop_problems(header, cs.replace("public static extern Status batch_cancel", "public static extern int batch_cancel")), "a wrong return type went unnoticed"
    assert manifest_problems(psd1.replace(version, version + ".1"), version), "a version mismatch went unnoticed"
    assert manifest_problems(psd1.replace("AzBatch.dll'", "AzBatch.psm1'", 1), version), "a script root module went unnoticed"

    checks = {
        "interop class matches azbatch.h": interop_problems(header, cs),
        "manifest": manifest_problems(psd1, version),
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
