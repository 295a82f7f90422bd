// What a command reads with -f FILE: a file, or stdin for `-`.

import { readFileSync } from 'node:fs';
import { UsageError } from './command';
import type { Session } from './session';

/** The text of -f FILE (`-` is stdin), and how to name it in messages. */
export async function readInput(session: Session, file: string, command: string, what: string): Promise<{ text: string; source: string }> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of session.io.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    return { text: Buffer.concat(chunks).toString('utf8'), source: '<stdin>' };
  }
  try {
    return { text: readFileSync(file, 'utf8'), source: file };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    throw new UsageError(`-f ${file}: cannot read ${what} (${why})`, command);
  }
}
