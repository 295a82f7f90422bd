#!/usr/bin/env node
// netcube-cni, as a container runtime runs a CNI plugin: the command and the
// attachment in the environment (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
// CNI_IFNAME, CNI_ARGS, CNI_PATH), the network config on stdin, the result or a CNI
// error on stdout (exit 1). See plugin.ts.
import { runCni } from './index';

void runCni(process.env, process.stdin, process.stdout).then((code) => {
  process.exitCode = code;
});
