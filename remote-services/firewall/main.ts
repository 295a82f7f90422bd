#!/usr/bin/env node
// The firewall service's process, netcube-firewall --etcd ... (see --help): the bin of @netcube/firewall.
import { run } from '@netcube/sdk';
import firewall from './service';

run(firewall, process.argv.slice(2));
