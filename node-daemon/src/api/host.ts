// HostService: what this host is and runs.

import * as fs from 'node:fs';
import * as os from 'node:os';
import { Rpc } from '@netcube/api/grpc/call';
import type { HostServiceHandlers } from '@netcube/api/generated/netcube/v1/HostService';
import { ERRORS } from '../runtime/abi';
import { ApiContext } from './context';
import { topologyMessage } from './convert';

export function hostService(ctx: ApiContext, rpc: Rpc, endpoints: () => string[]): HostServiceHandlers {
  return {
    GetHost: rpc.unary('GetHost', async () => {
      const counts = ctx.runtime.host.errorCounts();
      const applied = ctx.reconciler.appliedChains();
      return {
        name: ctx.host,
        version: ctx.version,
        kernel: os.release(),
        // What netcube uses and this machine was checked for (DESIGN.md): tcx needs
        // libbpf >= 1.3, freplace a kernel with BPF_PROG_TYPE_EXT, both absent here.
        features: { xdp: true, tc: true, ringbuf: true, xdpLiveFrames: true, btf: fs.existsSync('/sys/kernel/btf/vmlinux'), tcx: false, freplace: false },
        errors: Object.fromEntries(ERRORS.map((cause, i) => [cause, (counts[i] ?? 0n).toString()])),
        storeConnected: ctx.storeConnected(),
        appliedRevision: String(applied.reduce((max, c) => Math.max(max, c.revision), 0)),
        endpoints: endpoints(),
        // libuv's hrtime is CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads.
        monotonicNs: process.hrtime.bigint().toString(),
      };
    }),

    GetTopology: rpc.unary('GetTopology', async () => topologyMessage(ctx.runtime, ctx.reconciler.appliedChains())),
  };
}
