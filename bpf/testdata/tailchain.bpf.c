/* The floor of chaining by tail calls, for the benchmarks: a bare program that
 * reads its successor from a map, as a cube reads a peer word, and tail-calls it
 * through a prog array; the last one redirects. Every copy is loaded with its own
 * `self`. No metadata, no counters, no checks: what a hop of netcube costs beyond
 * this is the framework's. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 self = 0;

/* Slot i: copy i of the program. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} chain_progs SEC(".maps");

/* Slot i: the slot copy i tail-calls, or 0 for the last, which redirects to ifindex 1. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} chain_next SEC(".maps");

SEC("xdp")
int tailchain(struct xdp_md *ctx)
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

char LICENSE[] SEC("license") = "GPL";
