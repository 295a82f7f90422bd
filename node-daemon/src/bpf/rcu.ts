// Waiting for the programs that may still run with an old value.
import { native } from './addon';

/**
 * Resolves after an RCU grace period: every BPF program that started before
 * the call has finished, so none still uses what a map held before it (an old
 * generation of a chain, say). Takes milliseconds; off the event loop.
 */
export function synchronizeRcu(): Promise<void> {
  return native.synchronizeRcu();
}
