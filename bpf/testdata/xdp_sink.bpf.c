/* The receiving end of test traffic: counts the frames of test streams (IPv4
 * UDP to port 9, discard), in total and by source address, counts anything else
 * apart (a veth's own IPv6 chatter, say), and drops it all so that the
 * namespace's stack never sees it. Attached to a veth it also gives the veth
 * NAPI, which frames redirected or XDP-transmitted into it need. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ETH_P_IP 0x0800
#define PROTO_UDP 17
#define DISCARD_PORT 9

enum sink_counter {
	SINK_STREAM = 0, /* frames of test streams */
	SINK_OTHER  = 1, /* everything else */
};

/* Frames seen, by enum sink_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sink_frames SEC(".maps");

/* IPv4 source address (network order) -> stream frames seen from it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __be32);
	__type(value, __u64);
} sink_sources SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&sink_frames, &which);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u64 zero = 0, *n;

	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != PROTO_UDP || udp->dest != bpf_htons(DISCARD_PORT)) {
		count(SINK_OTHER);
		return XDP_DROP;
	}
	count(SINK_STREAM);
	n = bpf_map_lookup_elem(&sink_sources, &ip->saddr);
	if (!n) {
		/* Two CPUs may both insert; one wins, both then add to its entry. */
		bpf_map_update_elem(&sink_sources, &ip->saddr, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&sink_sources, &ip->saddr);
	}
	if (n)
		__sync_fetch_and_add(n, 1);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
