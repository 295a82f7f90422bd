// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* The vanilla baseline for the benchmarks: what simpleforwarder does (static
 * in-port -> out-port), hand-written as one monolithic program per hook, without
 * the framework: no metadata, no tail calls, no counters.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TC_ACT_SHOT 2

/* Ingress ifindex -> egress ifindex (0: drop). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} out_ifindex SEC(".maps");

SEC("xdp") int vanilla_fwd_xdp(struct xdp_md *ctx)
{
	__u32 in = ctx->ingress_ifindex;
	__u32 *out = bpf_map_lookup_elem(&out_ifindex, &in);

	if (!out || !*out)
		return XDP_DROP;
	return bpf_redirect(*out, 0);
}

SEC("tc") int vanilla_fwd_tc(struct __sk_buff *ctx)
{
	__u32 in = ctx->ifindex;
	__u32 *out = bpf_map_lookup_elem(&out_ifindex, &in);

	if (!out || !*out)
		return TC_ACT_SHOT;
	return bpf_redirect(*out, 0);
}

char _license[] SEC("license") = "GPL";
