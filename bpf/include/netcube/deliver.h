/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Delivering a packet to a peer: the one place that turns an encoded peer word
 * into a redirect, a tail call, a pass or a drop. Used by cubes (nc_redirect),
 * by the netdev entry and by packet-out.
 *
 * Every hop from one program of netcube to the next is a tail call, and the
 * kernel's x86 JIT compiles a tail call in one of two ways. When the verifier sees
 * the prog array and the index as constants at the call site, it emits a direct
 * `jmp` into the target program, which the kernel re-patches whenever that slot
 * of the array changes (its poke descriptors). Otherwise it emits an indirect jump,
 * which a kernel that guards indirect branches with retpolines (see
 * /sys/devices/system/cpu/vulnerabilities/spectre_v2) sends through a retpoline:
 * ten times the cost of the direct jump. So netcube never tail-calls an index it
 * reads at run time on the fast path: each prog array of the framework has one
 * call site per slot (nc_tail_call_static), and a switch picks the site.
 */
#ifndef __NETCUBE_DELIVER_H
#define __NETCUBE_DELIVER_H

#include "abi.h"
#include "hook.h"
#include "maps.h"

static __always_inline __u32 nc_peer_kind(__u64 peer) { return peer >> 56; }
static __always_inline __u32 nc_peer_port(__u64 peer) { return (peer >> 48) & 0xff; }
static __always_inline __u32 nc_peer_flags(__u64 peer) { return (peer >> 40) & 0xff; }
static __always_inline __u32 nc_peer_target(__u64 peer) { return (__u32)peer; }

/* A tail call through slot @slot of @map, a compile-time constant. Written in
 * assembly because clang, given several tail calls that differ only in their
 * index, merges them into one call with the index in a register (a run-time
 * index again, and an indirect jump). An "i" operand cannot be a register, and
 * clang never merges inline assembly whose operands it cannot vary. r1-r5 are
 * clobbered as by any helper call; a tail call that returns failed (empty slot,
 * or the kernel's limit of 33 reached).
 */
static __always_inline void nc_tail_call_static(void *ctx, void *map, const __u32 slot)
{
	asm volatile("r1 = %[ctx]\n\t"
		     "r2 = %[map]\n\t"
		     "r3 = %[slot]\n\t"
		     "call 12\n\t"
		     :: [ctx]"r"(ctx), [map]"r"(map), [slot]"i"(slot)
		     : "r0", "r1", "r2", "r3", "r4", "r5");
}

/* One call site per slot: case i tail-calls slot off + i of @map. A switch over
 * the cases compiles to a tree of compares, one (predicted) branch per level. */
#define __NC_JUMP_CASE(ctx, map, off, i)						\
	case (i):									\
		nc_tail_call_static(ctx, map, (off) + (i));				\
		break;
#define __NC_JUMP_CASES2(ctx, map, off, i) __NC_JUMP_CASE(ctx, map, off, i) __NC_JUMP_CASE(ctx, map, off, (i) + 1)
#define __NC_JUMP_CASES4(ctx, map, off, i) __NC_JUMP_CASES2(ctx, map, off, i) __NC_JUMP_CASES2(ctx, map, off, (i) + 2)
#define __NC_JUMP_CASES8(ctx, map, off, i) __NC_JUMP_CASES4(ctx, map, off, i) __NC_JUMP_CASES4(ctx, map, off, (i) + 4)
#define __NC_JUMP_CASES16(ctx, map, off, i) __NC_JUMP_CASES8(ctx, map, off, i) __NC_JUMP_CASES8(ctx, map, off, (i) + 8)
#define __NC_JUMP_CASES30(ctx, map, off, i)						\
	__NC_JUMP_CASES16(ctx, map, off, i) __NC_JUMP_CASES8(ctx, map, off, (i) + 16)	\
	__NC_JUMP_CASES4(ctx, map, off, (i) + 24) __NC_JUMP_CASES2(ctx, map, off, (i) + 28)

/* nc_jump_N(ctx, map, slot): a tail call through @slot (< N) of @map, where
 * @slot is known only at run time, as a direct jump. */
#define nc_jump_2(ctx, map, slot) do { switch (slot) { __NC_JUMP_CASES2(ctx, map, 0, 0) } } while (0)
#define nc_jump_8(ctx, map, slot) do { switch (slot) { __NC_JUMP_CASES8(ctx, map, 0, 0) } } while (0)

/* nc_jump_port(ctx, map, gen, port): a tail call through slot
 * gen * NC_MAX_PORTS + port of a cube's nc_peer_progs. Most cubes have two
 * ports, most packets leave by port 0 or 1: the tree asks for the generation,
 * then for those two, in two levels where one switch over all 64 slots takes six. */
#define __NC_JUMP_GEN(ctx, map, port, base)						\
	do {										\
		if ((port) < 2) {							\
			if ((port) == 0)						\
				nc_tail_call_static(ctx, map, (base));			\
			else								\
				nc_tail_call_static(ctx, map, (base) + 1);		\
		} else {								\
			switch ((port) - 2) {						\
			__NC_JUMP_CASES30(ctx, map, (base) + 2, 0)			\
			}								\
		}									\
	} while (0)
#define nc_jump_port(ctx, map, gen, port)						\
	do {										\
		if (gen)								\
			__NC_JUMP_GEN(ctx, map, port, NC_MAX_PORTS);			\
		else									\
			__NC_JUMP_GEN(ctx, map, port, 0);				\
	} while (0)

/* Prepares the hop into a cube peer: the metadata gets the next cube's in-port
 * and id (the caller decides which words it keeps) and is stored with the
 * packet. Non-zero when there was no room for it: drop the packet. */
static __always_inline int nc_enter_cube(struct nc_ctx *ctx, struct nc_md *md, __u64 peer)
{
	md->in_port = nc_peer_port(peer);
	md->cube_id = nc_peer_target(peer) / NC_MAX_MICROCUBES;
	return nc_md_store(ctx, md);
}

/* Hands the packet to a peer that is not a cube: out of a netdev, up the
 * kernel's stack, or nowhere (dropped). */
static __always_inline int nc_deliver_out(struct nc_ctx *ctx, __u64 peer)
{
	switch (nc_peer_kind(peer)) {
	case NC_PEER_NETDEV:
		return nc_redirect_netdev(ctx, nc_peer_target(peer), nc_peer_flags(peer));
	case NC_PEER_STACK:
		return NC_ACT_PASS;
	}
	return NC_ACT_DROP;
}

/* After a tail call that returned: the slot was empty or the chain too long. */
static __always_inline int nc_jump_failed(void)
{
	nc_count_error(NC_ERR_TAIL_CALL);
	return NC_ACT_DROP;
}

#endif /* __NETCUBE_DELIVER_H */
