/* One program the verifier accepts and one it must refuse, so a test can
 * check that the error names the right program and carries the log. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int accepted(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int read_unchecked(struct xdp_md *ctx)
{
	/* No data_end check before the read: "invalid access to packet". */
	__u8 *data = (void *)(long)ctx->data;

	return data[0];
}

char LICENSE[] SEC("license") = "GPL";
