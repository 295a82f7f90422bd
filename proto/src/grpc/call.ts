// Handlers as plain async functions, for netcubed's API and a service's config API
// alike. The adapters here give each one the request and a CallContext (an
// AbortSignal that fires when the client cancels, the deadline passes or the server
// stops; who is calling), ask the server's authorization before the handler runs,
// turn whatever it throws into a status (status.ts), and tell the server's metrics
// the outcome of every call.

import { once } from 'node:events';
import type { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { cite } from '../cite';
import type { Logger } from '../log';
import { Identity, PeerCall, tlsIdentity, unauthenticated } from './identity';
import { invalidArgument, StatusOptions, toStatus } from './status';

export interface CallContext {
  /** Aborts when the client cancels, its deadline passes, or the server stops. */
  readonly signal: AbortSignal;
  /** Milliseconds left until the client's deadline; Infinity without one. */
  remainingMs(): number;
  /** Who is calling (identity.ts). */
  readonly identity: Identity;
}

/** Calls in flight, so that stopping the server ends them (log streams above all). */
export class Calls {
  private readonly live = new Set<AbortController>();
  private stopped = false;

  open(call: { getDeadline(): grpc.Deadline; on(event: 'cancelled', listener: () => void): unknown }, identity: Identity): { ctx: CallContext; done(): void } {
    const controller = new AbortController();
    const deadline = deadlineMs(call.getDeadline());
    const timer = Number.isFinite(deadline) ? setTimeout(() => controller.abort(abortError('the deadline passed')), Math.max(0, deadline - Date.now())) : undefined;
    timer?.unref();
    call.on('cancelled', () => controller.abort(abortError('the client cancelled the call')));
    if (this.stopped) controller.abort(abortError('the server is stopping'));
    this.live.add(controller);
    return {
      ctx: { signal: controller.signal, remainingMs: () => deadline - Date.now(), identity },
      done: () => {
        clearTimeout(timer);
        this.live.delete(controller);
      },
    };
  }

  /** Aborts every call in flight, and those that arrive from now on. */
  abortAll(): void {
    this.stopped = true;
    for (const c of this.live) c.abort(abortError('the server is stopping'));
  }
}

function deadlineMs(deadline: grpc.Deadline): number {
  if (deadline instanceof Date) return deadline.getTime();
  return Number.isFinite(deadline) ? Number(deadline) : Infinity;
}

function abortError(message: string): Error {
  const err = new Error(message);
  err.name = 'AbortError';
  return err;
}

/** What a request that does not decode becomes, so the adapters can answer it INVALID_ARGUMENT (grpc-js would say INTERNAL). */
class MalformedRequest {
  constructor(
    readonly method: string,
    readonly reason: string,
  ) {}
}

/** A request whose decoding waits until the server admits the call (RpcServer.admit): its bytes are all it holds meanwhile. */
class DeferredRequest {
  constructor(
    readonly method: string,
    private readonly bytes: Buffer,
    private readonly deserialize: (bytes: Buffer) => unknown,
  ) {}

  decode(): unknown {
    try {
      return this.deserialize(this.bytes);
    } catch (err) {
      return new MalformedRequest(this.method, err instanceof Error ? err.message : String(err));
    }
  }
}

export interface ServiceOptions {
  /**
   * Methods whose requests are decoded only once the server admits the call
   * (RpcServer.admit): those whose decoded form is many times its bytes (a batch of
   * table entries), so calls waiting their turn hold their bytes only.
   */
  deferred?: readonly string[];
}

/**
 * Adds a service whose requests, when they do not decode (not protobuf, or not this
 * message), reach the adapters below as MalformedRequest instead of failing inside
 * grpc-js: the caller hears INVALID_ARGUMENT saying so.
 */
export function addService(server: grpc.Server, definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation, options: ServiceOptions = {}): void {
  const tolerant = Object.fromEntries(
    Object.entries(definition).map(([name, method]) => [
      name,
      {
        ...method,
        requestDeserialize: options.deferred?.includes(name)
          ? (bytes: Buffer) => new DeferredRequest(name, bytes, method.requestDeserialize)
          : (bytes: Buffer) => new DeferredRequest(name, bytes, method.requestDeserialize).decode(),
      },
    ]),
  );
  server.addService(tolerant, implementation);
}

function malformed(request: unknown): Error | undefined {
  if (!(request instanceof MalformedRequest)) return undefined;
  return invalidArgument('request', `the ${request.method} request is not a valid message of this API (${cite(request.reason)}): check the client's .proto files`);
}

/**
 * The client's messages of a bidirectional stream, as the handler reads them: one
 * that does not decode ends the call. Leaving the loop must not destroy the stream
 * (what for-await does by default): a destroyed call ends without a status, and
 * the client would wait for its deadline instead of hearing INVALID_ARGUMENT.
 */
async function* decoded<T>(incoming: Readable): AsyncIterable<T> {
  for await (const message of incoming.iterator({ destroyOnReturn: false }) as AsyncIterable<T>) {
    const bad = malformed(message);
    if (bad) throw bad;
    yield message;
  }
}

export interface Rpc {
  unary<Req, Res>(method: string, fn: (req: Req, call: CallContext) => Promise<Res>): grpc.handleUnaryCall<Req, Res>;
  /** `send` resolves once the message is handed on (it waits while the client reads slowly). */
  serverStream<Req, Res>(method: string, fn: (req: Req, call: CallContext, send: (msg: Res) => Promise<void>) => Promise<void>): grpc.handleServerStreamingCall<Req, Res>;
  /** As serverStream, with the client's messages as an async iterable. */
  bidiStream<Req, Res>(method: string, fn: (incoming: AsyncIterable<Req>, call: CallContext, send: (msg: Res) => Promise<void>) => Promise<void>): grpc.handleBidiStreamingCall<Req, Res>;
}

export interface RpcServer extends StatusOptions {
  log: Logger;
  /** Told the outcome of every call, by its status name (`OK`, `NOT_FOUND` ...). */
  countRpc?(method: string, code: string): void;
  /** Who is calling; by default the identity of its TLS client certificate. */
  identify?(call: PeerCall): Identity;
  /**
   * Runs before the handler of every unary and server-streaming call and throws to
   * refuse it (PERMISSION_DENIED). A bidirectional stream's handler checks what its
   * first message asks for itself.
   */
  authorize?(method: string, request: unknown, call: CallContext): void;
  /**
   * Waits until a call of a deferred method (ServiceOptions) may run, and throws to
   * refuse it (RESOURCE_EXHAUSTED); what it returns ends the call's turn.
   */
  admit?(method: string, signal: AbortSignal): Promise<() => void>;
}

export function rpcAdapters(server: RpcServer, calls: Calls): Rpc {
  const count = (method: string, code: grpc.status): void => server.countRpc?.(method, grpc.status[code]);
  const identify = (call: PeerCall): Identity => (server.identify ? server.identify(call) : (tlsIdentity(call) ?? unauthenticated(call)));
  /**
   * `fn` with the request, once the server has admitted a deferred one and
   * authorized the call; all in the promise, so a refusal is a status like any other.
   */
  const authorized = async <T>(method: string, received: unknown, callCtx: CallContext, fn: (request: never) => Promise<T>): Promise<T> => {
    const release = received instanceof DeferredRequest ? await (server.admit?.(method, callCtx.signal) ?? (() => undefined)) : undefined;
    try {
      const request = received instanceof DeferredRequest ? received.decode() : received;
      const bad = malformed(request);
      if (bad) throw bad;
      server.authorize?.(method, request, callCtx);
      return await fn(request as never);
    } finally {
      release?.();
    }
  };
  // Server-side and bidirectional streams alike: `send` waits while the client reads slowly.
  const stream = (
    method: string,
    call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
    fn: (callCtx: CallContext, send: (msg: unknown) => Promise<void>) => Promise<void>,
  ): void => {
    const { ctx: callCtx, done } = calls.open(call, identify(call));
    const send = async (msg: unknown): Promise<void> => {
      if (callCtx.signal.aborted) throw callCtx.signal.reason;
      if (call.write(msg as never)) return;
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      callCtx.signal.addEventListener('abort', stop);
      try {
        await once(call, 'drain', { signal: ac.signal });
      } catch {
        throw callCtx.signal.reason;
      } finally {
        callCtx.signal.removeEventListener('abort', stop);
      }
    };
    fn(callCtx, send).then(
      () => {
        done();
        count(method, grpc.status.OK);
        call.end();
      },
      (err: unknown) => {
        done();
        // A stream the server ends by stopping finishes cleanly; one the client left needs no answer.
        if (callCtx.signal.aborted && call.cancelled) {
          count(method, grpc.status.CANCELLED);
          return;
        }
        if (callCtx.signal.aborted && !call.cancelled && (err as Error)?.name === 'AbortError') {
          count(method, grpc.status.OK);
          call.end();
          return;
        }
        const s = toStatus(err, server.log, method, server);
        count(method, s.code);
        call.emit('error', s);
      },
    );
  };

  return {
    unary: (method, fn) => (call, callback) => {
      const { ctx: callCtx, done } = calls.open(call, identify(call));
      authorized(method, call.request, callCtx, (request) => fn(request, callCtx)).then(
        (res) => {
          done();
          count(method, grpc.status.OK);
          callback(null, res);
        },
        (err: unknown) => {
          done();
          const s = toStatus(err, server.log, method, server);
          count(method, s.code);
          callback(s);
        },
      );
    },
    serverStream: (method, fn) => (call) => stream(method, call, (callCtx, send) => authorized(method, call.request, callCtx, (request) => fn(request, callCtx, send))),
    bidiStream: (method, fn) => (call) => stream(method, call, (callCtx, send) => fn(decoded<never>(call), callCtx, send)),
  };
}
