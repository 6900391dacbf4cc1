"""Parses every .ps1/.psm1/.psd1 file under powershell/ with tree-sitter-powershell
and fails on any syntax error (ERROR or MISSING node), naming file, line and
column. Before checking the module it proves it can fail: a broken snippet must
be reported."""

import pathlib
import sys

import tree_sitter
import tree_sitter_powershell

LANGUAGE = tree_sitter.Language(tree_sitter_powershell.language())
PARSER = tree_sitter.Parser(LANGUAGE)


def problems(source: bytes):
    tree = PARSER.parse(source)
    out = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            line, col = node.start_point
            kind = "missing " + node.type if node.is_missing else "unexpected text"
            out.append((line + 1, col + 1, kind))
        stack.extend(node.children)
    return sorted(out)


def main() -> int:
    broken = b"function f { if ($x -eq 1 { 'no closing paren' } }\n"
    if not problems(broken):
        print("syntax check cannot fail: a broken snippet parsed cleanly", file=sys.stderr)
        return 1
    root = pathlib.Path(__file__).resolve().parents[1]
    files = sorted(p for ext in ("*.ps1", "*.psm1", "*.psd1") for p in root.rglob(ext))
    failed = 0
    for path in files:
        found = problems(path.read_bytes())
        for line, col, kind in found:
            print(f"{path.relative_to(root.parent)}:{line}:{col}: {kind}", file=sys.stderr)
        failed += bool(found)
        print(f"{'FAIL' if found else 'ok  '} {path.relative_to(root.parent)}")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main())
