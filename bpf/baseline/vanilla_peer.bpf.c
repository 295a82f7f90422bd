// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* The hand-written baseline for pods (bench p4): on the ingress of a pod's veth
 * end on the host, redirect each frame into another pod, straight into the far
 * end of that pod's veth (bpf_redirect_peer), as netcube's TC mode delivers into
 * pods. One program, no learning, no framework: the cheapest pod-to-pod
 * forwarder there is.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TC_ACT_SHOT 2

/* Host end of the sending pod's veth -> host end of the pod to reach (0: drop). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} out_ifindex SEC(".maps");

SEC("tc") int vanilla_peer_tc(struct __sk_buff *ctx)
{
	__u32 in = ctx->ifindex;
	__u32 *out = bpf_map_lookup_elem(&out_ifindex, &in);

	if (!out || !*out)
		return TC_ACT_SHOT;
	return bpf_redirect_peer(*out, 0);
}

char _license[] SEC("license") = "GPL";
