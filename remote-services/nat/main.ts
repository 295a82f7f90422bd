#!/usr/bin/env node
// The nat service's process, netcube-nat --etcd ... (see --help): the bin of @netcube/nat.
import { run } from '@netcube/sdk';
import nat from './service';

run(nat, process.argv.slice(2));
