// Every hop of netcube's fast path is a direct jump, as the kernel compiled it:
// read from the JIT image of the loaded programs (Program.code()). A tail call
// whose slot the verifier sees as a constant becomes `jmp rel32` into the target
// program, which the kernel re-patches when the slot changes; one whose slot is
// read at run time becomes an indirect jump, through a retpoline thunk on a kernel
// that guards indirect branches (spectre_v2). Packet-out's one run-time slot is
// the control: there the same reading finds the indirect jump.
//
// Chain: n0 -> a (nop) -> r (relay: its entry calls micro-cube 1) -> n2, in both
// hooks; then rewired to n0 -> a -> c (nop) -> n2.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { CollectionSpec, Program, type ProgramCode } from '../../node-daemon/src/bpf';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import { INJECT_HOST_MAPS } from '../../node-daemon/src/runtime/packetout';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import type { Topology } from '../../node-daemon/src/runtime/topology';
import { lineTopology } from '../helpers/chains';
import { createHostNetns, netdevEntry, openRuntime, registerTestTypes } from '../helpers/dataplane';

/** Kernel addresses of the retpoline thunks an indirect jump goes through. */
function indirectThunks(): Set<bigint> {
  const out = new Set<bigint>();
  for (const line of fs.readFileSync('/proc/kallsyms', 'utf8').split('\n')) {
    const [addr, , name] = line.split(' ');
    if (name?.startsWith('__x86_indirect_') && /thunk/.test(name)) out.add(BigInt(`0x${addr}`));
  }
  return out;
}

const retpolines = /Retpolines/.test(fs.readFileSync('/sys/devices/system/cpu/vulnerabilities/spectre_v2', 'utf8'));

/** The target of every `jmp rel32` (0xe9) in a program's machine code, function by function. */
function jumpTargets(code: ProgramCode): bigint[] {
  const out: bigint[] = [];
  let start = 0;
  code.jitedFuncLens.forEach((len, f) => {
    const base = code.jitedKsyms[f];
    for (let i = start; i + 5 <= start + len; i++) {
      if (code.jited[i] === 0xe9) out.push(base + BigInt(i - start + 5 + code.jited.readInt32LE(i + 1)));
    }
    start += len;
  });
  return out;
}

/** Whether `from` jumps straight into `to`: at its start, past the prologue a tail call skips. */
function jumpsInto(from: Program, to: Program): boolean {
  const entry = to.code().jitedKsyms[0];
  return jumpTargets(from.code()).some((t) => t >= entry && t < entry + 32n);
}

/** Whether a program jumps through a retpoline thunk (or, without retpolines, `jmp *%reg`). */
function jumpsIndirectly(p: Program): boolean {
  const code = p.code();
  if (retpolines) {
    const thunks = indirectThunks();
    return jumpTargets(code).some((t) => thunks.has(t));
  }
  return code.jited.some((b, i) => b === 0xff && i + 1 < code.jited.length && (code.jited[i + 1] & 0xf8) === 0xe0);
}

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: cube to cube, netdev to cube and micro-cube to micro-cube are direct jumps; packet-out's is not`, async (t) => {
    t.true(indirectThunks().size > 0 || !retpolines, 'no retpoline thunks in /proc/kallsyms to tell indirect jumps by');
    const ns = await createHostNetns(t, 2);
    const rt = await openRuntime(t, { netns: ns.path });
    await registerTestTypes(rt);
    const chain = (second: string, type: string): Topology => lineTopology(mode, [{ name: 'a', type: 'nop' }, { name: second, type }], 'n0', 'n2');
    await rt.apply(chain('r', 'relay'));
    const a = rt.cube('a');
    const r = rt.cube('r');
    // What n0 runs: a's entry fused with the netdev's (netdev.ts).
    const fused = netdevEntry(rt, 'n0', mode);
    t.teardown(() => fused.close());

    t.true(jumpsInto(a.program(0), r.program(0)), 'a does not jump straight into r');
    t.true(jumpsInto(fused, r.program(0)), "n0's entry (a, fused) does not jump straight into r");
    t.true(jumpsInto(r.program(0), r.program(1)), "r's entry does not jump straight into its micro-cube 1");
    for (const [name, p] of [['a', a.program(0)], ['n0', fused], ['r', r.program(0)], ['r micro-cube 1', r.program(1)]] as const)
      t.false(jumpsIndirectly(p), `${name} jumps indirectly`);

    // Rewired: the kernel patched a's jump to lead into c.
    await rt.apply(chain('c', 'nop'));
    const c: Cube = rt.cube('c');
    t.true(jumpsInto(a.program(0), c.program(0)), 'a does not jump straight into c after the rewiring');
    t.false(jumpsIndirectly(a.program(0)), 'a jumps indirectly after the rewiring');

    // The control: packet-out's inject program tail-calls a slot it reads from
    // the packet, and the same reading finds that jump indirect.
    const spec = CollectionSpec.fromFile(path.join(DEFAULT_OBJECTS_DIR, 'framework', `inject.${mode}.o`));
    for (const name of INJECT_HOST_MAPS) spec.maps.get(name)!.replaceWith(rt.host.framework(name, mode));
    const inject = await spec.load();
    t.teardown(() => inject.close());
    t.true(jumpsIndirectly(inject.program('nc_inject')), 'the inject program shows no indirect jump');
    t.false(jumpsInto(inject.program('nc_inject'), c.program(0)), 'the inject program jumps straight into a cube');
  });
}
