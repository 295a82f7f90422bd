/* TC (clsact, direct action) packet counter: counts IPv4 ICMP packets by
 * type and lets everything through. */
#include "icmp.h"

#define TC_ACT_OK 0

SEC("tc")
int tc_count_icmp(struct __sk_buff *skb)
{
	count_icmp((void *)(long)skb->data, (void *)(long)skb->data_end);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
