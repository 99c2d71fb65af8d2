#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (npm run build).
import { main } from '../dist/src/cli/main.js';
import { scrub } from '../dist/src/observe/redact.js';

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
