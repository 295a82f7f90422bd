// Every netcubectl command, in the order `netcubectl --help` lists them.

import { Command } from '../command';
import { access } from './access';
import { capture } from './capture';
import { apply, del, diff, history, rollback } from './chains';
import { describe } from './describe';
import { get } from './get';
import { logs } from './logs';
import { config, state } from './service';
import { table } from './table';
import { topology } from './topology';
import { types } from './types';

export const COMMANDS: Command[] = [apply, get, del, diff, history, rollback, describe, topology, table, config, state, logs, capture, types, access];
