#!/usr/bin/env node
// The bridge service's process, netcube-bridge --etcd ... (see --help): the bin of @netcube/bridge.
import { run } from '@netcube/sdk';
import bridge from './service';

run(bridge, process.argv.slice(2));
