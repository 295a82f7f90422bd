/* A tail-call pair: entry jumps through slot 0 of jump_table and returns 1
 * only when the slot is empty; target returns 42. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Slot 0: where entry jumps. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jump_table SEC(".maps");

SEC("xdp")
int entry(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jump_table, 0);
	return 1;
}

SEC("xdp")
int target(struct xdp_md *ctx)
{
	return 42;
}

char LICENSE[] SEC("license") = "GPL";
