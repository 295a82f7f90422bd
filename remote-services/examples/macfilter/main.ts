#!/usr/bin/env node
// node build/js/remote-services/examples/macfilter/main.js --etcd ... (see --help).
import { run } from '../../sdk';
import macfilter from './service';

run(macfilter, process.argv.slice(2));
