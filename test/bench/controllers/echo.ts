#!/usr/bin/env node
// A controller built with the SDK, for the slow-path benchmark (p8 in
// test/bench/suites/services.ts): node build/js/test/bench/controllers/echo.js --etcd ...
//
// It controls the probe test cube type (bpf/testdata/cubes/probe.bpf.c), which it
// registers itself. Its cubes hand every packet entering port `a` to it; it sends
// each one back out of port `b`, after writing the packet-in's data-plane
// timestamp into a stamped payload (ECHO_MAGIC first, the time 8 bytes on), for
// the latency sink at the far end (bpf/testdata/xdp_latency.bpf.c).

import * as path from 'node:path';
import { defineService, run } from '@netcube/sdk';
import { DEFAULT_OBJECTS_DIR } from '../../../node-daemon/src/runtime/runtime';

/** Why probe hands a packet over (any number: the controller does not look). */
export const ECHO_REASON = 7;
/** "NCTS" read as a little-endian u32: LAT_MAGIC of xdp_latency.bpf.c. */
export const ECHO_MAGIC = 0x5354434e;
/** Where the stamped payload starts: Ethernet, IPv4 without options, UDP. */
export const PAYLOAD_AT = 14 + 20 + 8;

const objects = path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'cubes');

const echo = defineService({
  type: 'probe',
  config: { proto: 'google/protobuf/empty.proto', message: 'google.protobuf.Empty' },
  objects: { xdp: path.join(objects, 'probe.xdp.o'), tc: path.join(objects, 'probe.tc.o') },
  staticTables: (cube) => ({ probe_actions: [{ key: cube.port('a').index, value: { op: 'PROBE_CONTROLLER', arg: ECHO_REASON } }] }),
  packetIn(cube, pkt) {
    const frame = pkt.frame;
    if (frame.length >= PAYLOAD_AT + 16 && frame.readUInt32LE(PAYLOAD_AT) === ECHO_MAGIC) frame.writeBigUInt64LE(pkt.timestampNs, PAYLOAD_AT + 8);
    cube.packetOut('b', 'egress', frame);
  },
});

if (require.main === module) run(echo, process.argv.slice(2));
