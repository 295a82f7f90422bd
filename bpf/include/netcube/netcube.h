/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* The one header a cube includes. A cube is a handler
 *
 *     static int fwd(struct nc_ctx *ctx, struct nc_md *md)
 *
 * registered with NC_CUBE(fwd) (or NC_TRANSPARENT_CUBE, NC_MICROCUBE), which
 * returns one of nc_redirect(ctx, md, port), nc_drop, nc_pass, nc_forward,
 * nc_call(ctx, md, index) or nc_to_controller(ctx, md, reason). The same source
 * builds for XDP and for TC. Tables are declared with NC_TABLE (addresses and
 * ports in them with the typed fields of fields.h), logs written with nc_log.
 * Everything about slots, metadata layout and prog arrays stays inside the
 * framework; so the helpers take the md the handler was given, never a copy
 * of it (the framework keeps what it needs right behind it: struct __nc_frame
 * in cube.h), nor an md of a BPF global function's arguments.
 */
#ifndef __NETCUBE_H
#define __NETCUBE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"
#include "fields.h"
#include "hook.h"
#include "maps.h"
#include "deliver.h"
#include "netdev.h"
#include "cube.h"
#include "tables.h"
#include "log.h"
#include "slowpath.h"
#include "ports.h"
#include "parsing.h"

#endif /* __NETCUBE_H */
