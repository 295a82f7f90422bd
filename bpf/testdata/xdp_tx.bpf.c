/* Bounces every frame out of the interface it came in on. Run as a
 * BPF_F_TEST_XDP_LIVE_FRAMES test run it is a packet generator: each frame is
 * really transmitted on the ctx's ingress interface. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
