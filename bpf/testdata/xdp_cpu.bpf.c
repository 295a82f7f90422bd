/* Writes the CPU it runs on into the frame's first four bytes: a test run's
 * output says where the run ran. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_cpu(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 *cpu = data;

	if ((void *)(cpu + 1) > data_end)
		return XDP_ABORTED;
	*cpu = bpf_get_smp_processor_id();
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
