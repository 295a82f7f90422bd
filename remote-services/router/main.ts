#!/usr/bin/env node
// The router service's process, netcube-router --etcd ... (see --help): the bin of @netcube/router.
import { run } from '@netcube/sdk';
import router from './service';

run(router, process.argv.slice(2));
