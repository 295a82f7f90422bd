/* The floor of chaining by tail calls, for the benchmarks: copies of a bare
 * program, each loaded with its own `self`, each tail-calling copy self + 1 of a
 * shared prog array; where that slot is empty (the last copy) it redirects. No
 * counters, no checks: what a hop of netcube costs beyond these is the
 * framework's. The kinds, one per benchmark figure:
 *
 *   chain_indirect  reads its successor's slot from a map, as netcube did before
 *                   it jumped through constant slots: an indirect jump
 *   chain_direct    tail-calls the slot the verifier sees as a constant (self is
 *                   read-only data): a direct jump, as netcube's hops
 *   chain_metadata  chain_direct, loading, checking and storing netcube's
 *                   metadata on the way, as a cube does
 *   chain_mdload    chain_direct, loading and checking it only
 *   chain_mdstore   chain_direct, storing it only
 *   chain_self      tail-calls its own slot, until the kernel's limit of 33
 *                   stops it: 33 direct jumps through one program
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#define NC_HOOK_XDP
#include <netcube/abi.h>
#include <netcube/hook.h>

const volatile __u32 self = 0;

/* Slot i: copy i of the program. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} chain_progs SEC(".maps");

/* chain_indirect's slot i: the slot copy i tail-calls, or 0 for the last. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} chain_next SEC(".maps");

/* One call site, so clang has nothing to merge: the constant reaches the verifier
 * as netcube's own (nc_tail_call_static) do. */
static __always_inline void tail_call_next(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &chain_progs, self + 1);
}

SEC("xdp")
int chain_indirect(struct xdp_md *ctx)
{
	__u32 me = self;
	__u64 *next = bpf_map_lookup_elem(&chain_next, &me);

	if (!next)
		return XDP_ABORTED;
	if (!*next)
		return bpf_redirect(1, 0);
	bpf_tail_call(ctx, &chain_progs, (__u32)*next);
	return XDP_ABORTED;
}

SEC("xdp")
int chain_direct(struct xdp_md *ctx)
{
	tail_call_next(ctx);
	return bpf_redirect(1, 0);
}

SEC("xdp")
int chain_self(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &chain_progs, self);
	return bpf_redirect(1, 0);
}

/* Entered with metadata for cube `self`, as netcube's nop is; hands it on to
 * cube self + 1 through the other port. A test run runs the chain again on the
 * same frame, metadata and all: the last copy leaves it as the first expects it. */
SEC("xdp")
int chain_metadata(struct xdp_md *ctx)
{
	struct nc_md md;

	if (nc_md_load(ctx, &md) || md.cube_id != self)
		return XDP_ABORTED;
	md.in_port ^= 1;
	md.cube_id = self + 1;
	md.reason = 0;
	md.flags &= NC_MD_F_GEN;
	md.user[0] = 0;
	md.user[1] = 0;
	md.user[2] = 0;
	if (nc_md_store(ctx, &md))
		return XDP_ABORTED;
	tail_call_next(ctx);
	md.cube_id = 1;
	if (nc_md_store(ctx, &md))
		return XDP_ABORTED;
	return bpf_redirect(1, 0);
}

char LICENSE[] SEC("license") = "GPL";

/* chain_metadata's two halves apart: loading and checking the metadata the
 * copy before left (chain_mdload), and storing fresh metadata without reading
 * any (chain_mdstore). What a hop pays for handing metadata on is more than the
 * two: the next copy's load waits for this one's store. */
SEC("xdp")
int chain_mdload(struct xdp_md *ctx)
{
	struct nc_md md;

	if (nc_md_load(ctx, &md) || md.cube_id != 1)
		return XDP_ABORTED;
	tail_call_next(ctx);
	return bpf_redirect(1, 0);
}

SEC("xdp")
int chain_mdstore(struct xdp_md *ctx)
{
	struct nc_md md = { .in_port = self, .cube_id = 1 };

	if (nc_md_store(ctx, &md))
		return XDP_ABORTED;
	tail_call_next(ctx);
	return bpf_redirect(1, 0);
}
