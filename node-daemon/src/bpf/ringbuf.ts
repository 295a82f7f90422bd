// RingBufReader: records of a BPF ring buffer map, delivered in order on the
// event loop. The native side watches the ring's epoll fd with libuv and
// consumes on the main thread when it turns readable: no thread, no polling.
import { EventEmitter } from 'node:events';
import { native } from './addon';
import { ClosedError } from './errors';
import { mapHandle, type BpfMap } from './map';

export interface RingBufReader {
  on(event: 'record', listener: (record: Buffer) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'newListener' | 'removeListener', listener: (event: string | symbol) => void): this;
  once(event: 'record', listener: (record: Buffer) => void): this;
  once(event: 'error', listener: (error: Error) => void): this;
  once(event: 'close', listener: () => void): this;
}

/**
 * Emits 'record' (a Buffer, a copy of the record) for every record in ring
 * order, 'error' when consuming fails and 'close' after close(). It consumes
 * only while it has 'record' listeners (an async iterator is one): records
 * produced meanwhile wait in the ring, or are dropped by the producer when it
 * is full. While consuming, it keeps the process alive, like a socket.
 */
export class RingBufReader extends EventEmitter {
  #native: { resume(): void; pause(): void; close(): void } | undefined;
  #label: string;

  constructor(map: BpfMap) {
    super();
    const handle = mapHandle(map);
    if (map.type !== 'ringbuf') throw new TypeError(`${map} is a ${map.type} map, not a ringbuf`);
    this.#label = `RingBufReader of ${map}`;
    this.#native = new native.RingBuffer(handle, this.#label,
      (records) => {
        for (const record of records) this.emit('record', record);
      },
      (error) => this.emit('error', error));
    this.on('newListener', (event: string | symbol) => {
      if (event === 'record' && this.listenerCount('record') === 0) this.#native?.resume();
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'record' && this.listenerCount('record') === 0) this.#native?.pause();
    });
  }

  get closed(): boolean {
    return this.#native === undefined;
  }

  close(): void {
    if (this.#native === undefined) return;
    this.#native.close();
    this.#native = undefined;
    this.emit('close');
  }

  /**
   * Records from now until close() (iteration ends) or an error (it throws).
   * Leaving the loop early stops listening but leaves the reader open.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    if (this.#native === undefined) throw new ClosedError(this.#label);
    const queue: Buffer[] = [];
    let head = 0;
    let ended = false;
    let failure: Error | undefined;
    let waiter: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void } | undefined;

    const stop = (): void => {
      ended = true;
      this.off('record', onRecord).off('error', onError).off('close', stop);
      const w = waiter;
      waiter = undefined;
      if (w === undefined) return;
      if (failure !== undefined) w.reject(failure);
      else w.resolve({ value: undefined, done: true });
    };
    const onRecord = (record: Buffer): void => {
      const w = waiter;
      if (w === undefined) {
        queue.push(record);
        return;
      }
      waiter = undefined;
      w.resolve({ value: record, done: false });
    };
    const onError = (error: Error): void => {
      failure = error;
      stop();
    };
    this.on('record', onRecord).on('error', onError).on('close', stop);

    return {
      next: (): Promise<IteratorResult<Buffer>> => {
        if (head < queue.length) {
          const value = queue[head++];
          if (head === queue.length) queue.length = head = 0;
          return Promise.resolve({ value, done: false });
        }
        if (failure !== undefined) {
          const error = failure;
          failure = undefined;
          return Promise.reject(error);
        }
        if (ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          waiter = { resolve, reject };
        });
      },
      return: (): Promise<IteratorResult<Buffer>> => {
        stop();
        queue.length = head = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }
}
