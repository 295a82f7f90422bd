#!/usr/bin/env node
// The bridge service's process: node build/js/remote-services/bridge/main.js --etcd ... (see --help).
import { run } from '../sdk';
import bridge from './service';

run(bridge, process.argv.slice(2));
