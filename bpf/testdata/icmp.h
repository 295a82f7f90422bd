/* Packet parsing shared by the XDP and TC packet counters of the binding
 * tests: both count IPv4 ICMP packets by ICMP type, so a test can tell
 * ping's echo requests (8) from its replies (0) and ignore ARP and IPv6. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ETH_P_IP 0x0800
#define IPPROTO_ICMP_NUM 1

/* Packets seen, indexed by ICMP type. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} icmp_types SEC(".maps");

/* Returns the ICMP type of an IPv4 ICMP packet, or -1 for anything else. */
static __always_inline int icmp_type(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct icmphdr *icmp;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	if (ip->protocol != IPPROTO_ICMP_NUM || ip->ihl < 5)
		return -1;
	icmp = (void *)ip + ip->ihl * 4;
	if ((void *)(icmp + 1) > data_end)
		return -1;
	return icmp->type;
}

static __always_inline void count_icmp(void *data, void *data_end)
{
	int type = icmp_type(data, data_end);
	__u32 key = type;
	__u64 *seen;

	if (type < 0)
		return;
	seen = bpf_map_lookup_elem(&icmp_types, &key);
	if (seen)
		__sync_fetch_and_add(seen, 1);
}
