// A TCP transfer between two pods, checked end to end: run inside the pods' namespaces
// (ip netns exec <pod> node tcp-transfer.js ...).
//
//   serve HOST PORT                   accept one connection, print {"bytes", "sha256"} when it ends
//   send HOST PORT BYTES [CHUNK MS]   send BYTES of a fixed pseudo-random stream, CHUNK bytes every MS
//                                     milliseconds (default: as fast as TCP goes); print {"bytes", "sha256"}
//
// The server prints "listening" first, so a test knows when to start the sender.

import { createHash } from 'node:crypto';
import * as net from 'node:net';

function stream(bytes: number): Buffer {
  // xorshift32: the same bytes every run, not compressible, cheap.
  const out = Buffer.alloc(bytes);
  let x = 0x12345678;
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

function serve(host: string, port: number): void {
  const server = net.createServer((socket) => {
    const hash = createHash('sha256');
    let bytes = 0;
    socket.on('data', (d) => {
      bytes += d.length;
      hash.update(d);
    });
    socket.on('end', () => {
      process.stdout.write(`${JSON.stringify({ bytes, sha256: hash.digest('hex') })}\n`);
      socket.end();
      server.close();
    });
    socket.on('error', (err) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    });
  });
  server.listen(port, host, () => process.stdout.write('listening\n'));
}

function send(host: string, port: number, bytes: number, chunk: number, everyMs: number): void {
  const data = stream(bytes);
  const socket = net.connect(port, host, () => {
    if (!everyMs) {
      socket.end(data);
      return;
    }
    let at = 0;
    const timer = setInterval(() => {
      const next = Math.min(at + chunk, bytes);
      socket.write(data.subarray(at, next));
      at = next;
      if (at === bytes) {
        clearInterval(timer);
        socket.end();
      }
    }, everyMs);
  });
  socket.on('close', () => process.stdout.write(`${JSON.stringify({ bytes, sha256: createHash('sha256').update(data).digest('hex') })}\n`));
  socket.on('error', (err) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
}

const [mode, host, port, bytes, chunk, everyMs] = process.argv.slice(2);
if (mode === 'serve') serve(host, Number(port));
else if (mode === 'send') send(host, Number(port), Number(bytes), Number(chunk ?? 65536), Number(everyMs ?? 0));
else {
  process.stderr.write('usage: tcp-transfer.js serve HOST PORT | send HOST PORT BYTES [CHUNK MS]\n');
  process.exit(2);
}
