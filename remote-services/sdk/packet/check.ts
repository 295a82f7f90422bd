// Argument checks shared by the builders. Every error names the argument and
// shows the value it got, so a wrong field in a test table is found at once.

export function show(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (Buffer.isBuffer(value)) return `a ${value.length}-byte Buffer`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** An integer that fits in `bits` unsigned bits. */
export function checkUint(value: unknown, bits: number, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${show(value)}`);
  const max = 2 ** bits - 1;
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, got ${value}`);
  }
  return value;
}

export function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${show(value)}`);
  return value;
}

export function checkBuffer(value: unknown, name: string): Buffer {
  if (!Buffer.isBuffer(value)) throw new TypeError(`${name} must be a Buffer, got ${show(value)}`);
  return value;
}
