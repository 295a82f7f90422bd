/* Ring buffer producer: one record per run, numbered in order. Driven by
 * BPF_PROG_TEST_RUN with a repeat count. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct tst_event {
	__u64 seq;
	__u32 len;
	__u32 pad;
};

/* Records for user space. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Test runs repeat on one CPU, so a plain increment numbers the records in order. */
__u64 next_seq;

SEC("xdp")
int produce(struct xdp_md *ctx)
{
	struct tst_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);

	if (!event)
		return XDP_ABORTED;
	event->seq = next_seq++;
	event->len = ctx->data_end - ctx->data;
	event->pad = 0;
	bpf_ringbuf_submit(event, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
