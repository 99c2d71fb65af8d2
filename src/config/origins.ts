/** Where each value of the effective configuration came from, for `redtail check-config`. */

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Dotted paths of the leaves of `value` (arrays are leaves: a list comes whole from one source). */
export function leafPaths(value: unknown, prefix = ''): string[] {
  if (!isPlainObject(value) || (prefix !== '' && Object.keys(value).length === 0))
    return prefix ? [prefix] : [];
  return Object.entries(value)
    .filter(([, v]) => v !== undefined)
    .flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
}

export function getPath(value: unknown, path: string): unknown {
  let cur = value;
  for (const part of path.split('.')) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/**
 * For each leaf of `effective`, the name of the last layer (lowest to highest precedence) that sets it or one of
 * its parents; `default` when none does.
 */
export function originsOf(effective: unknown, layers: [string, unknown][]): Map<string, string> {
  const origins = new Map<string, string>();
  for (const path of leafPaths(effective)) {
    const parts = path.split('.');
    let origin = 'default';
    for (const [name, layer] of layers) {
      for (let n = parts.length; n > 0; n--) {
        const v = getPath(layer, parts.slice(0, n).join('.'));
        // An empty object (no TLS flag given) sets nothing.
        if (v === undefined || (isPlainObject(v) && Object.keys(v).length === 0)) continue;
        // A parent object only counts when it is the leaf's own value (a whole list or object replaced).
        if (n === parts.length || !isPlainObject(v)) origin = name;
        break;
      }
    }
    origins.set(path, origin);
  }
  return origins;
}
