// Argument checks shared by the binding's modules. Each names the argument,
// so a caller knows which one to fix.

export function checkUint32(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`${name} must be an integer from 0 to 4294967295, got ${value}`);
  }
}

export function checkIndex(value: unknown, name: string, min: number, max: number): asserts value is number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

export function checkPath(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, got ${typeof value}`);
  if (value.length === 0 || value.includes('\0')) throw new RangeError(`${name} must be a non-empty path`);
}

export function checkBuffer(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${name} must be a Buffer, got ${value === null ? 'null' : typeof value}`);
  }
}

export function checkOptions(value: unknown, name = 'options'): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${name} must be an object`);
}

/** Interface names as the kernel takes them: 1 to 15 bytes, no '/', no whitespace. */
export function checkIfname(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, got ${typeof value}`);
  if (!/^[^\s/:]{1,15}$/.test(value)) throw new RangeError(`${name}: '${value}' is not an interface name`);
}

/**
 * A network namespace as given by callers: a name under /run/netns (as `ip
 * netns` makes them) or a path to a namespace file (/proc/<pid>/ns/net).
 */
export function netnsPath(value: unknown, name: string): string | null {
  if (value === undefined) return null;
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, got ${typeof value}`);
  if (value.length === 0 || value.includes('\0')) throw new RangeError(`${name} must be a namespace name or path`);
  return value.includes('/') ? value : `/run/netns/${value}`;
}
