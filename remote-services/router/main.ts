#!/usr/bin/env node
// The router service's process: node build/js/remote-services/router/main.js --etcd ... (see --help).
import { run } from '../sdk';
import router from './service';

run(router, process.argv.slice(2));
