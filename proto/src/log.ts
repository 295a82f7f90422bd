// Structured logs: one JSON object per line on stderr, with a time, a level, a
// message and the fields that say which object it is about.

export const LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type Level = (typeof LEVELS)[number];

export type Fields = Record<string, unknown>;

export class Logger {
  constructor(
    private readonly level: Level = 'info',
    private readonly base: Fields = {},
    private readonly out: (line: string) => void = (line) => process.stderr.write(line),
  ) {}

  /** A logger that adds `fields` to every line. */
  with(fields: Fields): Logger {
    return new Logger(this.level, { ...this.base, ...fields }, this.out);
  }

  error(msg: string, fields?: Fields): void {
    this.write('error', msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.write('warn', msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.write('info', msg, fields);
  }
  debug(msg: string, fields?: Fields): void {
    this.write('debug', msg, fields);
  }

  private write(level: Level, msg: string, fields?: Fields): void {
    if (LEVELS.indexOf(level) > LEVELS.indexOf(this.level)) return;
    const line = { time: new Date().toISOString(), level, msg, ...this.base, ...fields };
    this.out(`${JSON.stringify(line, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Error ? v.message : v))}\n`);
  }
}
