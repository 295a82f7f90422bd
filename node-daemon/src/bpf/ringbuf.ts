// RingBufReader: records of a BPF ring buffer map, delivered in order on the
// event loop. The native side watches the ring's fd with libuv and, when it
// turns readable, takes a bounded slice of records on the main thread, then
// returns to the loop: no thread, no polling, and no flood can hold the loop.
import { EventEmitter } from 'node:events';
import { native, type NativeRingBuffer } from './addon';
import { ClosedError } from './errors';
import { mapHandle, type BpfMap } from './map';
import { checkIndex } from './validate';

export interface RingBufReaderOptions {
  /**
   * Records taken per wake-up at most (default 256): the loop runs everything
   * else that is ready before the next slice, so this bounds how long one read
   * holds it and how many records are in flight at once.
   */
  budget?: number;
  /**
   * Records per second at most (default: no limit). Past it the reader stops
   * watching until the rate allows a slice again; records wait in the ring
   * meanwhile, and the producer drops what does not fit. It may run ahead by
   * a tenth of a second's worth (at least one slice).
   */
  ratePerSecond?: number;
}

/** Records per wake-up by default: a few hundred microseconds of work per slice. */
export const DEFAULT_RING_BUDGET = 256;

/** What a reader did, for metrics. */
export interface RingBufStats {
  /** Records delivered. */
  records: number;
  /** Times the reader stopped because it had used its rate. */
  rateWaits: number;
}

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
 * only while it has 'record' listeners (an async iterator is one) and is not
 * paused: records produced meanwhile wait in the ring, or are dropped by the
 * producer when it is full. While consuming, it keeps the process alive, like
 * a socket.
 */
export class RingBufReader extends EventEmitter {
  #native: NativeRingBuffer | undefined;
  #label: string;
  readonly budget: number;
  readonly ratePerSecond: number | undefined;
  readonly stats: RingBufStats = { records: 0, rateWaits: 0 };
  #paused = false;
  #watching = false;
  /** Records the rate still allows now, and when that was worked out (ms). */
  #tokens = 0;
  #refilled = 0;
  #rateWait: NodeJS.Timeout | undefined;

  constructor(map: BpfMap, opts: RingBufReaderOptions = {}) {
    super();
    const handle = mapHandle(map);
    if (map.type !== 'ringbuf') throw new TypeError(`${map} is a ${map.type} map, not a ringbuf`);
    const budget = opts.budget ?? DEFAULT_RING_BUDGET;
    checkIndex(budget, 'budget', 1, 2 ** 20);
    this.budget = budget;
    if (opts.ratePerSecond !== undefined) {
      checkIndex(opts.ratePerSecond, 'ratePerSecond', 1, 2 ** 31);
      this.ratePerSecond = opts.ratePerSecond;
      this.#tokens = this.#capacity();
      this.#refilled = performance.now();
    }
    this.#label = `RingBufReader of ${map}`;
    this.#native = new native.RingBuffer(handle, this.#label,
      (records) => {
        this.stats.records += records.length;
        for (const record of records) this.emit('record', record);
        if (this.ratePerSecond !== undefined) this.#spend(records.length);
      },
      (error) => this.emit('error', error));
    this.on('newListener', (event: string | symbol) => {
      // Emitted before the listener is added.
      if (event === 'record') this.#watch(1);
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'record') this.#watch();
    });
  }

  get closed(): boolean {
    return this.#native === undefined;
  }

  /** Whether pause() holds it. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Stops consuming until resume(): records wait in the ring meanwhile. */
  pause(): this {
    this.#paused = true;
    this.#watch();
    return this;
  }

  resume(): this {
    this.#paused = false;
    this.#watch();
    return this;
  }

  #capacity(): number {
    return Math.max(this.budget, Math.ceil(this.ratePerSecond! / 10));
  }

  /** Takes `n` records off the rate; when less than a slice is left, waits until a slice is allowed again. */
  #spend(n: number): void {
    const rate = this.ratePerSecond!;
    const now = performance.now();
    this.#tokens = Math.min(this.#capacity(), this.#tokens + ((now - this.#refilled) * rate) / 1000) - n;
    this.#refilled = now;
    if (this.#tokens >= this.budget || this.#rateWait !== undefined || this.#native === undefined) return;
    this.stats.rateWaits++;
    this.#rateWait = setTimeout(() => {
      this.#rateWait = undefined;
      this.#watch();
    }, Math.ceil(((this.budget - this.#tokens) * 1000) / rate));
    this.#watch();
  }

  /** Watches the ring exactly while there are listeners, no pause and the rate allows it. */
  #watch(adding = 0): void {
    const want = !this.#paused && this.#rateWait === undefined && this.listenerCount('record') + adding > 0;
    if (this.#native === undefined || want === this.#watching) return;
    this.#watching = want;
    if (want) this.#native.resume(this.budget);
    else this.#native.pause();
  }

  close(): void {
    if (this.#native === undefined) return;
    this.#native.close();
    this.#native = undefined;
    this.#watching = false;
    clearTimeout(this.#rateWait);
    this.#rateWait = undefined;
    this.emit('close');
  }

  /**
   * Records from now until close() (iteration ends) or an error (it throws).
   * Leaving the loop early stops listening but leaves the reader open. A loop
   * that falls behind holds at most one slice (budget) of records: the reader
   * is paused until it has taken them, and the rest wait in the ring.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    if (this.#native === undefined) throw new ClosedError(this.#label);
    const queue: Buffer[] = [];
    let head = 0;
    let ended = false;
    let failure: Error | undefined;
    let waiter: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void } | undefined;

    /** Whether this iterator paused the reader, its queue being full. */
    let holding = false;
    const release = (): void => {
      if (!holding) return;
      holding = false;
      this.resume();
    };

    const stop = (): void => {
      ended = true;
      this.off('record', onRecord).off('error', onError).off('close', stop);
      release();
      const w = waiter;
      waiter = undefined;
      if (w === undefined) return;
      if (failure !== undefined) w.reject(failure);
      else w.resolve({ value: undefined, done: true });
    };
    const onRecord = (record: Buffer): void => {
      const w = waiter;
      if (w === undefined) {
        if (queue.push(record) - head >= this.budget && !holding && !this.#paused) {
          holding = true;
          this.pause();
        }
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
          if (head === queue.length) {
            queue.length = head = 0;
            release();
          }
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
