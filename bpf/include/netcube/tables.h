/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Tables: the maps a cube declares for its own state, by scope (enum
 * nc_table_scope), as the ANCS'19 paper's private / shared / public tables:
 *
 *   NC_TABLE(fdb, BPF_MAP_TYPE_HASH, struct mac_key, struct fdb_entry, 4096, NC_SCOPE_CUBE);
 *
 * The scope is recorded next to the map as a read-only variable the runtime reads
 * from the object; a map declared without NC_TABLE has cube scope.
 */
#ifndef __NETCUBE_TABLES_H
#define __NETCUBE_TABLES_H

#include "abi.h"

#define NC_TABLE_FLAGS(_name, _type, _key, _value, _max, _scope, _flags)	\
	struct {								\
		__uint(type, _type);						\
		__uint(max_entries, _max);					\
		__uint(map_flags, _flags);					\
		__type(key, _key);						\
		__type(value, _value);						\
	} _name SEC(".maps");							\
	const volatile __u32 __nc_scope_##_name = _scope

#define NC_TABLE(_name, _type, _key, _value, _max, _scope)			\
	NC_TABLE_FLAGS(_name, _type, _key, _value, _max, _scope, 0)

#endif /* __NETCUBE_TABLES_H */
