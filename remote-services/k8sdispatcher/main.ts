#!/usr/bin/env node
// The k8sdispatcher service's process, netcube-k8sdispatcher --etcd ... (see --help): the bin of @netcube/k8sdispatcher.
import { run } from '@netcube/sdk';
import dispatcher from './service';

run(dispatcher, process.argv.slice(2));
