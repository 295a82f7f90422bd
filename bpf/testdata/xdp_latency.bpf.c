/* The receiving end of a slow-path latency measurement: frames of a test stream
 * (IPv4 UDP to port 9) whose payload starts with LAT_MAGIC carry, 8 bytes on, a
 * time on the host's clock (bpf_ktime_get_ns) — the data plane's timestamp of the
 * packet-in that the controller copied into its packet-out. The sink files
 * now - that time into a histogram and drops the frame; it counts the rest apart.
 * Attached to a veth it also gives the veth NAPI, which redirected frames need.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ETH_P_IP 0x0800
#define PROTO_UDP 17
#define DISCARD_PORT 9
#define LAT_MAGIC 0x5354434eU /* "NCTS", little endian */

/* Width of a histogram bucket, and how many; the last counts everything longer. */
#define LAT_BUCKET_NS 2000ULL
#define LAT_BUCKETS 8192

enum lat_counter {
	LAT_FRAMES  = 0, /* stamped frames */
	LAT_OTHER   = 1, /* everything else */
	LAT_SUM_NS  = 2, /* sum of the latencies */
	LAT_MAX_NS  = 3, /* the longest (racy across CPUs: a maximum of maxima is close enough) */
	LAT_COUNTERS,
};

/* By enum lat_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LAT_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} lat_counters SEC(".maps");

/* Frames by latency, LAT_BUCKET_NS per bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LAT_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} lat_histogram SEC(".maps");

static __always_inline __u64 *counter(__u32 which)
{
	return bpf_map_lookup_elem(&lat_counters, &which);
}

SEC("xdp")
int xdp_latency(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 *magic = (void *)(udp + 1);
	__u64 *stamp = (void *)(udp + 1) + 8, *n;
	__u64 now = bpf_ktime_get_ns(), lat;
	__u32 bucket;

	if ((void *)(stamp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != PROTO_UDP || udp->dest != bpf_htons(DISCARD_PORT) || *magic != LAT_MAGIC) {
		n = counter(LAT_OTHER);
		if (n)
			__sync_fetch_and_add(n, 1);
		return XDP_DROP;
	}
	lat = now > *stamp ? now - *stamp : 0;
	bucket = lat / LAT_BUCKET_NS < LAT_BUCKETS - 1 ? lat / LAT_BUCKET_NS : LAT_BUCKETS - 1;
	n = bpf_map_lookup_elem(&lat_histogram, &bucket);
	if (n)
		__sync_fetch_and_add(n, 1);
	n = counter(LAT_SUM_NS);
	if (n)
		__sync_fetch_and_add(n, lat);
	n = counter(LAT_MAX_NS);
	if (n && lat > *n)
		*n = lat;
	/* Counted last: who reads the count finds the histogram complete. */
	n = counter(LAT_FRAMES);
	if (n)
		__sync_fetch_and_add(n, 1);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
