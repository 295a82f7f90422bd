/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Typed table fields: what a key or value member holds in network byte order,
 * said through its BTF type name. The daemon's table codec, the API and
 * `netcubectl table` show and take these as text instead of the integers their
 * bytes make on a little-endian host (65546 for 10.0.1.0):
 *
 *   nc_ipv4_t  an IPv4 address                      "10.0.1.0"
 *   nc_ipv6_t  an IPv6 address (or IPv4-mapped)     "fe80::1", "::ffff:10.0.0.1"
 *   nc_mac_t   a MAC address                        "02:00:00:00:00:01"
 *   nc_port_t  a TCP/UDP port                       8080
 *
 * They are plain C types of the right size: the fast path reads and compares them
 * as it would a __be32, six bytes, a __be16; an IPv6 address is four __be32 words
 * (not vmlinux.h's struct in6_addr, whose member accesses would be CO-RE
 * relocations against a kernel type the typedef is not).
 */
#ifndef __NETCUBE_FIELDS_H
#define __NETCUBE_FIELDS_H

typedef __be32 nc_ipv4_t;
typedef struct {
	__be32 word[4];
} nc_ipv6_t;
typedef __u8 nc_mac_t[6];
typedef __be16 nc_port_t;

#endif /* __NETCUBE_FIELDS_H */
