#!/usr/bin/env node
// Sends one frame at a steady rate out of a netdev, from a process of its own:
//
//   node pace-frames.js NETNS IFNAME RATE SECONDS FRAME_HEX
//
// Frames leave one at a time through a packet socket, each at its due time (the
// thread sleeps in between, without spinning), so that a latency measurement sees
// a steady stream rather than the bursts of an event loop that was busy. Prints
// {"sent": n, "refused": frames the socket's queue had no room for, "late":
// frames sent more than 1 ms after their due time}.

import { PacketSocket } from '../../node-daemon/src/bpf';

const nap = ((word) => (ms: number) => void Atomics.wait(word, 0, 0, ms))(new Int32Array(new SharedArrayBuffer(4)));

async function main(): Promise<void> {
  const [netns, ifname, rateText, secondsText, hex] = process.argv.slice(2);
  const rate = Number(rateText);
  const seconds = Number(secondsText);
  if (!netns || !ifname || !(rate > 0) || !(seconds > 0) || !hex) throw new Error('usage: pace-frames.js NETNS IFNAME RATE SECONDS FRAME_HEX');
  const frame = Buffer.from(hex, 'hex');
  const socket = await PacketSocket.open(ifname, netns);
  const start = process.hrtime.bigint();
  const intervalNs = 1e9 / rate;
  const total = Math.floor(rate * seconds);
  let late = 0;
  let refused = 0;
  for (let i = 0; i < total; i++) {
    const due = start + BigInt(Math.round(i * intervalNs));
    const wait = Number(due - process.hrtime.bigint()) / 1e6;
    if (wait > 0) nap(wait);
    else if (wait < -1) late++;
    if (!socket.send(frame)) refused++;
  }
  socket.close();
  process.stdout.write(`${JSON.stringify({ sent: total - refused, refused, late })}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
