#!/usr/bin/env node
// The tutorial service's process, netcube-macfilter --etcd ... (see --help).
import { run } from '@netcube/sdk';
import macfilter from './service';

run(macfilter, process.argv.slice(2));
