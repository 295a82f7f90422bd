// Real sockets for the service catalog's tests, run inside the test's namespaces
// (ip netns exec <ns> node sockets.js ...). Every command prints JSON lines.
//
//   serve NAME TCP_PORTS UDP_PORTS   TCP servers that greet each connection with "NAME\n" and
//                                    then echo, UDP servers that echo; ports comma-separated,
//                                    "-" for none. Prints {"ready":true}, then one line per TCP
//                                    connection and per datagram: {"tcp"|"udp": port, "peer"}.
//   connect HOST PORT MS             one TCP connection: {"result": "greeting"|"refused"|"timeout"|
//                                    "error", "greeting"?, "local"?}
//   udp HOST PORT COUNT MS           COUNT datagrams on one connected socket, each after the
//                                    last one's echo: {"sent", "echoed", "error"?} (ECONNREFUSED:
//                                    an ICMP unreachable came back)
//   flows HOST PORT N MS             N UDP sockets (N source ports, all open together), each
//                                    sending until its datagram is echoed (every 500 ms, in
//                                    waves of 256 sockets, so no queue on the way overflows),
//                                    for at most MS: {"flows", "echoed", "errors"}
//   conns HOST PORT N PARALLEL       N TCP connections, PARALLEL at a time, each read up to its
//                                    greeting and closed: {"greetings": {NAME: count}, "failed"}
//   hold HOST PORT N                 N TCP connections kept open: {"greetings": [NAME...],
//                                    "locals": [their local ADDRESS:PORT...]}; then
//                                    per line "probe MS" on stdin, one round trip on each:
//                                    {"answered": [true|false...]}; "exit" ends

import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as readline from 'node:readline';

const out = (v: unknown): void => void process.stdout.write(`${JSON.stringify(v)}\n`);
const ports = (text: string): number[] => (text === '-' ? [] : text.split(',').map(Number));
const peerOf = (address: string, port: number): string => `${address}:${port}`;

function serve(name: string, tcpPorts: number[], udpPorts: number[]): void {
  let pending = tcpPorts.length + udpPorts.length;
  const ready = (): void => {
    if (--pending === 0) out({ ready: true });
  };
  for (const port of tcpPorts) {
    const server = net.createServer((socket) => {
      out({ tcp: port, peer: peerOf(socket.remoteAddress!, socket.remotePort!) });
      socket.on('error', () => undefined);
      socket.write(`${name}\n`);
      socket.pipe(socket);
    });
    server.listen(port, '0.0.0.0', ready);
  }
  for (const port of udpPorts) {
    const socket = dgram.createSocket('udp4');
    socket.on('message', (msg, rinfo) => {
      out({ udp: port, peer: peerOf(rinfo.address, rinfo.port) });
      socket.send(msg, rinfo.port, rinfo.address);
    });
    socket.bind(port, '0.0.0.0', ready);
  }
  if (pending === 0) out({ ready: true });
}

/** Connects and reads the greeting line. */
function greet(host: string, port: number, ms: number): Promise<{ result: string; greeting?: string; socket?: net.Socket; local?: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ result: 'timeout' });
    }, ms);
    const onData = (d: Buffer): void => {
      buffer += d.toString();
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve({ result: 'greeting', greeting: buffer.slice(0, nl), socket, local: peerOf(socket.localAddress!, socket.localPort!) });
    };
    socket.on('data', onData);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ result: err.code === 'ECONNREFUSED' ? 'refused' : 'error', greeting: err.code });
    });
  });
}

async function connect(host: string, port: number, ms: number): Promise<void> {
  const { socket, ...result } = await greet(host, port, ms);
  socket?.destroy();
  out(result);
}

async function udp(host: string, port: number, count: number, ms: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  let echoed = 0;
  let sent = 0;
  const result = await new Promise<{ error?: string }>((resolve) => {
    let timer: NodeJS.Timeout;
    const next = (): void => {
      if (sent === count) return resolve({});
      sent++;
      socket.send(`datagram ${sent}`);
      clearTimeout(timer);
      timer = setTimeout(() => resolve({ error: 'timeout' }), ms);
    };
    socket.on('message', () => {
      echoed++;
      next();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ error: err.code ?? err.message });
    });
    socket.connect(port, host, next);
  });
  socket.close();
  out({ sent, echoed, ...result });
}

async function flows(host: string, port: number, n: number, ms: number): Promise<void> {
  const sockets: dgram.Socket[] = [];
  const answered = new Set<number>();
  let errors = 0;
  for (let i = 0; i < n; i++) {
    const s = dgram.createSocket('udp4');
    sockets.push(s);
    s.on('message', () => answered.add(i));
    s.on('error', () => errors++);
    await new Promise<void>((resolve) => s.bind(0, resolve));
  }
  const deadline = Date.now() + ms;
  const WAVE = 256;
  while (answered.size < n && Date.now() < deadline) {
    const waiting = [...sockets.keys()].filter((i) => !answered.has(i));
    for (let w = 0; w < waiting.length; w += WAVE) {
      const wave = waiting.slice(w, w + WAVE);
      for (const i of wave) sockets[i].send(`flow ${i}`, port, host);
      // The wave's answers, or 500 ms.
      const until = Date.now() + 500;
      while (wave.some((i) => !answered.has(i)) && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    }
  }
  for (const s of sockets) s.close();
  out({ flows: n, echoed: answered.size, errors });
}

async function conns(host: string, port: number, n: number, parallel: number): Promise<void> {
  const greetings: Record<string, number> = {};
  let failed = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const { socket, greeting, result } = await greet(host, port, 5_000);
      if (result === 'greeting') greetings[greeting!] = (greetings[greeting!] ?? 0) + 1;
      else failed++;
      socket?.destroy();
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  out({ greetings, failed });
}

async function hold(host: string, port: number, n: number): Promise<void> {
  const held: Awaited<ReturnType<typeof greet>>[] = [];
  for (let i = 0; i < n; i++) held.push(await greet(host, port, 5_000));
  out({ greetings: held.map((h) => h.greeting ?? h.result), locals: held.map((h) => h.local ?? null) });
  const probe = (h: Awaited<ReturnType<typeof greet>>, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      const socket = h.socket;
      if (!socket || socket.destroyed) return resolve(false);
      const timer = setTimeout(() => {
        socket.off('data', onData);
        resolve(false);
      }, ms);
      const onData = (): void => {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(true);
      };
      socket.on('data', onData);
      socket.write('p\n');
    });
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const [command, ms] = line.split(' ');
    if (command === 'exit') break;
    if (command === 'probe') out({ answered: await Promise.all(held.map((h) => probe(h, Number(ms)))) });
  }
  for (const h of held) h.socket?.destroy();
}

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case 'serve':
    serve(args[0], ports(args[1]), ports(args[2]));
    break;
  case 'connect':
    void connect(args[0], Number(args[1]), Number(args[2]));
    break;
  case 'udp':
    void udp(args[0], Number(args[1]), Number(args[2]), Number(args[3]));
    break;
  case 'flows':
    void flows(args[0], Number(args[1]), Number(args[2]), Number(args[3]));
    break;
  case 'conns':
    void conns(args[0], Number(args[1]), Number(args[2]), Number(args[3]));
    break;
  case 'hold':
    void hold(args[0], Number(args[1]), Number(args[2]));
    break;
  default:
    process.stderr.write(`sockets.js: unknown command ${command}\n`);
    process.exit(2);
}
