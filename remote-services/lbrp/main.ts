#!/usr/bin/env node
// The lbrp service's process, netcube-lbrp --etcd ... (see --help): the bin of @netcube/lbrp.
import { run } from '@netcube/sdk';
import lbrp from './service';

run(lbrp, process.argv.slice(2));
