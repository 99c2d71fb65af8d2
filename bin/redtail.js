#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (npm run build).

// node:sqlite (the state locks) and zlib.crc32 (the spool) arrived in Node 22; say so instead of failing deep inside.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 22)) {
  process.stderr.write(
    `redtail: Node ${process.versions.node} is too old: redtail needs Node 22.22 or later (the container image ships Node 26). ` +
      'In a checkout, `npm ci` installs Node 26 into node_modules: run `npx node bin/redtail.js ...`.\n',
  );
  process.exit(1);
}

const { main } = await import('../dist/src/cli/main.js');
const { scrub } = await import('../dist/src/observe/redact.js');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    // An unexpected error's stack may quote a library's message; no secret redtail knows is printed.
    process.stderr.write(`redtail: ${scrub(String(err?.stack ?? err))}\n`);
    process.exitCode = 1;
  },
);
