import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The brief's rule "no import cycles", checked on the runtime graph: `import type` and `import { type X }` are erased
// by tsc and cannot make a module see another half-initialised, so only value imports and re-exports count.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const importPattern = /^(?:import|export)\s+([^;]*?)\s+from\s+'(\.{1,2}\/[^']+)'/gms;

/** True when an import statement brings at least one value (not only types) into the module. */
function importsValues(clause: string): boolean {
  if (/^type\s/.test(clause)) return false;
  const braced = /\{([^}]*)\}/.exec(clause);
  if (braced === null) return true; // default, namespace or `export *`
  const outside = clause.replace(braced[0], '').replace(/,/g, '').trim();
  if (outside !== '') return true; // a default import beside the braces
  const names = (braced[1] ?? '').split(',').map((n) => n.trim());
  return names.some((n) => n !== '' && !n.startsWith('type '));
}

function runtimeGraph(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const targets: string[] = [];
    for (const match of text.matchAll(importPattern)) {
      const [, clause = '', spec = ''] = match;
      if (!importsValues(clause)) continue;
      targets.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
    }
    graph.set(file, targets);
  }
  return graph;
}

function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      const seen = state.get(next);
      if (seen === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (seen === undefined) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return cycles;
}

describe('module graph', () => {
  const files = ['src', 'sinks', 'bench'].flatMap((d) => sources(join(root, d)));

  it('finds the modules it checks', () => {
    expect(files.length).toBeGreaterThan(50);
  });

  it('detects a cycle when there is one (the checker itself)', () => {
    const a = join(root, 'a.ts');
    const b = join(root, 'b.ts');
    expect(
      findCycles(
        new Map([
          [a, [b]],
          [b, [a]],
        ]),
      ),
    ).toEqual([[a, b, a]]);
    expect(importsValues('type { X }')).toBe(false);
    expect(importsValues('{ type X, type Y }')).toBe(false);
    expect(importsValues('{ type X, y }')).toBe(true);
    expect(importsValues('Default, { type X }')).toBe(true);
  });

  it('has no runtime import cycle in src, sinks or bench', () => {
    const cycles = findCycles(runtimeGraph(files)).map((c) => c.map((f) => relative(root, f)).join(' → '));
    expect(cycles).toEqual([]);
  });
});
