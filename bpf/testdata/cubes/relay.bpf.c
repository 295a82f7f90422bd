// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* relay: a two-port cube made of two micro-cubes, for tests that replace one
 * while traffic flows. The entry hands every packet to micro-cube 1 with a word
 * derived from its in-port; micro-cube 1 checks the word and sends the packet out
 * of the other port. A packet that met a half-replaced cube would fail the check.
 */
#include <netcube/netcube.h>

#define RELAY_WORD 0x72656c61U /* "rela" */

static __always_inline int relay_entry(struct nc_ctx *ctx, struct nc_md *md)
{
	md->user[0] = RELAY_WORD ^ md->in_port;
	return nc_call(ctx, md, 1);
}

static __always_inline int relay_out(struct nc_ctx *ctx, struct nc_md *md)
{
	if (md->user[0] != (RELAY_WORD ^ md->in_port))
		return nc_drop(ctx, md);
	return nc_redirect(ctx, md, md->in_port ^ 1);
}

NC_CUBE(relay_entry);
NC_MICROCUBE(1, relay_out);
