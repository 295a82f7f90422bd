/* Maps of every shape the map tests need, typed through BTF, and a program
 * that updates them so tests can see the kernel side write too. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define BPF_F_MMAPABLE_FLAG (1U << 10)

enum tst_verdict {
	TST_PASS = 0,
	TST_DROP = 1,
};

struct tst_flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
};

struct tst_flow_stats {
	__u64 packets;
	__u64 bytes;
	char tag[8];
	enum tst_verdict verdict;
};

/* Per-flow packet and byte counts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct tst_flow_key);
	__type(value, struct tst_flow_stats);
} flows SEC(".maps");

/* Calls of count_packet, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

/* Calls of count_packet in slot 0; user space stores through mmap in the others. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__uint(map_flags, BPF_F_MMAPABLE_FLAG);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

SEC("xdp")
int count_packet(struct xdp_md *ctx)
{
	struct tst_flow_key key = { .proto = 17 };
	struct tst_flow_stats *stats;
	__u32 zero = 0;
	__u64 *count;

	count = bpf_map_lookup_elem(&hits, &zero);
	if (count)
		(*count)++;
	count = bpf_map_lookup_elem(&totals, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);
	stats = bpf_map_lookup_elem(&flows, &key);
	if (stats) {
		__sync_fetch_and_add(&stats->packets, 1);
		__sync_fetch_and_add(&stats->bytes, ctx->data_end - ctx->data);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
