// A client of netcubed's netcube.v1 API, for netcubectl, remote services and tests:
// one promise-returning method per RPC (async iterables for streams), typed by
// the generated message types, over a unix socket or TCP with TLS.
//
//   const client = NetcubeClient.connect({ target: 'unix:/run/netcube/h1/netcubed.sock' });
//   const cube = await client.createCube({ name: 'fw1', type: 'simpleforwarder', ports: ['in', 'out'] });
//   for await (const line of client.streamLogs({ cubes: ['fw1'] }, { signal })) console.log(line.message);
//   client.close();
//
// A failed call rejects with ApiCallError: its gRPC code, the server's message and,
// for INVALID_ARGUMENT, the field at fault.

import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import type { Empty__Output } from '../generated/google/protobuf/Empty';
import type { AttachRequest } from '../generated/netcube/v1/AttachRequest';
import type { CaptureMessage__Output } from '../generated/netcube/v1/CaptureMessage';
import type { CaptureRequest } from '../generated/netcube/v1/CaptureRequest';
import type { CaptureServiceClient } from '../generated/netcube/v1/CaptureService';
import type { CreateCubeRequest } from '../generated/netcube/v1/CreateCubeRequest';
import type { Cube__Output } from '../generated/netcube/v1/Cube';
import type { CubeServiceClient } from '../generated/netcube/v1/CubeService';
import type { CubeType__Output } from '../generated/netcube/v1/CubeType';
import type { DeleteCubeRequest } from '../generated/netcube/v1/DeleteCubeRequest';
import type { DeleteEntryRequest } from '../generated/netcube/v1/DeleteEntryRequest';
import type { DetachRequest } from '../generated/netcube/v1/DetachRequest';
import type { Entry__Output } from '../generated/netcube/v1/Entry';
import type { GetCubeRequest } from '../generated/netcube/v1/GetCubeRequest';
import type { GetEntryRequest } from '../generated/netcube/v1/GetEntryRequest';
import type { GetTypeRequest } from '../generated/netcube/v1/GetTypeRequest';
import type { Host__Output } from '../generated/netcube/v1/Host';
import type { HostServiceClient } from '../generated/netcube/v1/HostService';
import type { ListCubesResponse__Output } from '../generated/netcube/v1/ListCubesResponse';
import type { ListEntriesRequest } from '../generated/netcube/v1/ListEntriesRequest';
import type { ListTablesRequest } from '../generated/netcube/v1/ListTablesRequest';
import type { ListTablesResponse__Output } from '../generated/netcube/v1/ListTablesResponse';
import type { ListTypesResponse__Output } from '../generated/netcube/v1/ListTypesResponse';
import type { LogLine__Output } from '../generated/netcube/v1/LogLine';
import type { LogServiceClient } from '../generated/netcube/v1/LogService';
import type { ControllerMessage } from '../generated/netcube/v1/ControllerMessage';
import type { DaemonMessage__Output } from '../generated/netcube/v1/DaemonMessage';
import type { PacketOut } from '../generated/netcube/v1/PacketOut';
import type { SlowPathServiceClient } from '../generated/netcube/v1/SlowPathService';
import type { PutEntriesRequest } from '../generated/netcube/v1/PutEntriesRequest';
import type { PutEntriesResponse__Output } from '../generated/netcube/v1/PutEntriesResponse';
import type { PutEntryRequest } from '../generated/netcube/v1/PutEntryRequest';
import type { RegisterTypeRequest } from '../generated/netcube/v1/RegisterTypeRequest';
import type { ReplaceMicroCubeRequest } from '../generated/netcube/v1/ReplaceMicroCubeRequest';
import type { SetPeerRequest } from '../generated/netcube/v1/SetPeerRequest';
import type { StreamLogsRequest } from '../generated/netcube/v1/StreamLogsRequest';
import type { TableServiceClient } from '../generated/netcube/v1/TableService';
import type { Topology__Output } from '../generated/netcube/v1/Topology';
import type { TypeServiceClient } from '../generated/netcube/v1/TypeService';
import type { UnregisterTypeRequest } from '../generated/netcube/v1/UnregisterTypeRequest';
import type { UpdateCubeRequest } from '../generated/netcube/v1/UpdateCubeRequest';
import { FIELD_METADATA_KEY, loadApi } from './proto';
import { CLIENT_LIMITS } from './limits';

/** The replies, as the client receives them. */
export type { DaemonMessage__Output as DaemonMessage, CaptureMessage__Output as CaptureMessage };
export type { Cube__Output as Cube, CubeType__Output as CubeType, Entry__Output as Entry, Host__Output as Host, LogLine__Output as LogLine, Topology__Output as Topology };

export interface ClientOptions {
  /** `unix:/path/to/netcubed.sock`, or `host:port` (always TLS). */
  target: string;
  /** For TCP: PEM files (paths) or their contents; without `ca`, the system's roots. */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; serverName?: string };
  /** Deadline of each call unless the call says otherwise; default 120 s (mutations wait until applied). */
  timeoutMs?: number;
}

export interface CallOptions {
  /** Cancels the call (for streams: ends them). */
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** A call that failed, with what the server said. */
export class ApiCallError extends Error {
  override name = 'ApiCallError';
  /** The status's name: INVALID_ARGUMENT, NOT_FOUND ... */
  readonly codeName: string;
  /** For INVALID_ARGUMENT: the request field at fault, as the proto names it (ports[1], peer.netdev). */
  readonly field?: string;

  constructor(
    readonly method: string,
    readonly code: grpc.status,
    readonly details: string,
    readonly metadata?: grpc.Metadata,
  ) {
    super(`${method}: ${grpc.status[code] ?? code}: ${details}`);
    this.codeName = grpc.status[code] ?? String(code);
    const field = metadata?.get(FIELD_METADATA_KEY)[0];
    if (field !== undefined) this.field = String(field);
  }
}

export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

type Unary = (req: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => grpc.ClientUnaryCall;

/** A controller's slow-path session (see NetcubeClient.openSlowPath). */
export interface SlowPathStream extends AsyncIterable<DaemonMessage__Output> {
  /**
   * Sends packets into the data plane, in order, in one message (batch what is at
   * hand: a message costs far more than a packet). False while the stream is full:
   * the message is buffered all the same; wait for drained() before more.
   */
  packetOuts(packets: PacketOut[]): boolean;
  /** Resolves when the stream can take more (at once when it can now); never rejects. */
  drained(): Promise<void>;
  close(): void;
}

export class NetcubeClient {
  private readonly host: HostServiceClient;
  private readonly types: TypeServiceClient;
  private readonly cubes: CubeServiceClient;
  private readonly tables: TableServiceClient;
  private readonly logs: LogServiceClient;
  private readonly slowPath: SlowPathServiceClient;
  private readonly captures: CaptureServiceClient;
  private readonly health: grpc.Client & Record<string, Unary>;
  private readonly timeoutMs: number;

  private constructor(opts: ClientOptions) {
    const { api } = loadApi();
    const v1 = api.netcube.v1;
    const { credentials, options } = channelOf(opts);
    // One channel for every service: the later clients share the first's.
    this.host = new v1.HostService(opts.target, credentials, options);
    const channel = { channelOverride: this.host.getChannel() };
    this.types = new v1.TypeService(opts.target, credentials, channel);
    this.cubes = new v1.CubeService(opts.target, credentials, channel);
    this.tables = new v1.TableService(opts.target, credentials, channel);
    this.logs = new v1.LogService(opts.target, credentials, channel);
    this.slowPath = new v1.SlowPathService(opts.target, credentials, channel);
    this.captures = new v1.CaptureService(opts.target, credentials, channel);
    const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
    this.health = new Health(opts.target, credentials, channel) as unknown as grpc.Client & Record<string, Unary>;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
  }

  /** A client of the daemon at `opts.target`; the connection is made on first use. */
  static connect(opts: ClientOptions): NetcubeClient {
    if (typeof opts?.target !== 'string' || opts.target === '') throw new TypeError('opts.target must be unix:/path or host:port');
    return new NetcubeClient(opts);
  }

  /** Resolves once connected; rejects after `timeoutMs`. */
  waitForReady(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => this.host.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    this.host.close();
  }

  // ------------------------------------------------------------- health

  /** grpc.health.v1 Check of `service` ('' for the daemon as a whole). */
  async checkHealth(service = '', opts: CallOptions = {}): Promise<HealthStatus> {
    const res = (await this.unary(this.health, 'Check', { service }, opts)) as { status: HealthStatus };
    return res.status;
  }

  // ------------------------------------------------------------- HostService

  getHost(opts?: CallOptions): Promise<Host__Output> {
    return this.unary(this.host, 'GetHost', {}, opts);
  }
  getTopology(opts?: CallOptions): Promise<Topology__Output> {
    return this.unary(this.host, 'GetTopology', {}, opts);
  }

  // ------------------------------------------------------------- TypeService

  listTypes(opts?: CallOptions): Promise<ListTypesResponse__Output> {
    return this.unary(this.types, 'ListTypes', {}, opts);
  }
  getType(req: GetTypeRequest, opts?: CallOptions): Promise<CubeType__Output> {
    return this.unary(this.types, 'GetType', req, opts);
  }
  registerType(req: RegisterTypeRequest, opts?: CallOptions): Promise<CubeType__Output> {
    return this.unary(this.types, 'RegisterType', req, opts);
  }
  unregisterType(req: UnregisterTypeRequest, opts?: CallOptions): Promise<Empty__Output> {
    return this.unary(this.types, 'UnregisterType', req, opts);
  }

  // ------------------------------------------------------------- CubeService

  createCube(req: CreateCubeRequest, opts?: CallOptions): Promise<Cube__Output> {
    return this.unary(this.cubes, 'CreateCube', req, opts);
  }
  getCube(req: GetCubeRequest, opts?: CallOptions): Promise<Cube__Output> {
    return this.unary(this.cubes, 'GetCube', req, opts);
  }
  listCubes(opts?: CallOptions): Promise<ListCubesResponse__Output> {
    return this.unary(this.cubes, 'ListCubes', {}, opts);
  }
  updateCube(req: UpdateCubeRequest, opts?: CallOptions): Promise<Cube__Output> {
    return this.unary(this.cubes, 'UpdateCube', req, opts);
  }
  deleteCube(req: DeleteCubeRequest, opts?: CallOptions): Promise<Empty__Output> {
    return this.unary(this.cubes, 'DeleteCube', req, opts);
  }
  setPeer(req: SetPeerRequest, opts?: CallOptions): Promise<Cube__Output> {
    return this.unary(this.cubes, 'SetPeer', req, opts);
  }
  attach(req: AttachRequest, opts?: CallOptions): Promise<Cube__Output> {
    return this.unary(this.cubes, 'Attach', req, opts);
  }
  detach(req: DetachRequest, opts?: CallOptions): Promise<Cube__Output> {
    return this.unary(this.cubes, 'Detach', req, opts);
  }
  replaceMicroCube(req: ReplaceMicroCubeRequest, opts?: CallOptions): Promise<Cube__Output> {
    return this.unary(this.cubes, 'ReplaceMicroCube', req, opts);
  }

  // ------------------------------------------------------------- TableService

  listTables(req: ListTablesRequest, opts?: CallOptions): Promise<ListTablesResponse__Output> {
    return this.unary(this.tables, 'ListTables', req, opts);
  }
  getEntry(req: GetEntryRequest, opts?: CallOptions): Promise<Entry__Output> {
    return this.unary(this.tables, 'GetEntry', req, opts);
  }
  putEntry(req: PutEntryRequest, opts?: CallOptions): Promise<Empty__Output> {
    return this.unary(this.tables, 'PutEntry', req, opts);
  }
  deleteEntry(req: DeleteEntryRequest, opts?: CallOptions): Promise<Empty__Output> {
    return this.unary(this.tables, 'DeleteEntry', req, opts);
  }
  putEntries(req: PutEntriesRequest, opts?: CallOptions): Promise<PutEntriesResponse__Output> {
    return this.unary(this.tables, 'PutEntries', req, opts);
  }
  /** Every entry of a table; leaving the loop early cancels the stream. */
  listEntries(req: ListEntriesRequest, opts?: CallOptions): AsyncIterable<Entry__Output> {
    return this.stream('ListEntries', (o) => this.tables.ListEntries(req, new grpc.Metadata(), o), { timeoutMs: this.timeoutMs, ...opts });
  }

  // ------------------------------------------------------------- LogService

  /** Data-plane log lines as they arrive, until `opts.signal` aborts or the loop is left. No deadline by default. */
  streamLogs(req: StreamLogsRequest, opts?: CallOptions): AsyncIterable<LogLine__Output> {
    return this.stream('StreamLogs', (o) => this.logs.StreamLogs(req, new grpc.Metadata(), o), { timeoutMs: Infinity, ...opts });
  }

  // ------------------------------------------------------------- CaptureService

  /**
   * Copies of the packets a packetcapture cube sees
   * (capture.proto): first what is captured, then batches of packets, until
   * `signal` aborts (the daemon then switches the copying off) or `count` packets came.
   */
  capture(req: CaptureRequest, opts?: CallOptions): AsyncIterable<CaptureMessage__Output> {
    return this.stream('Capture', (o) => this.captures.Capture(req, new grpc.Metadata(), o), { timeoutMs: Infinity, ...opts });
  }

  // ------------------------------------------------------------- SlowPathService

  /**
   * Opens a controller's slow-path session with this host: says what it controls,
   * then yields the daemon's messages (welcome, packet-ins, packet-out errors) while
   * packetOut() sends packets back on the same stream. Ends with close() or `signal`.
   */
  openSlowPath(hello: { controller: string; types?: string[]; cubes?: string[] }, opts: CallOptions = {}): SlowPathStream {
    opts.signal?.throwIfAborted();
    const call = this.slowPath.Connect(new grpc.Metadata(), { deadline: deadlineOf(opts.timeoutMs ?? Infinity) });
    call.write({ hello } satisfies ControllerMessage);
    const messages = this.stream<DaemonMessage__Output>('Connect', () => call, opts);
    let full = false;
    let drained: Promise<void> | undefined;
    return {
      [Symbol.asyncIterator]: () => messages[Symbol.asyncIterator](),
      packetOuts: (packets: PacketOut[]) => {
        full = !call.write({ packetOuts: { packets } } satisfies ControllerMessage);
        return !full;
      },
      drained: () => {
        if (!full || call.destroyed) return Promise.resolve();
        drained ??= new Promise<void>((resolve) => {
          const done = (): void => {
            call.off('drain', done).off('close', done);
            full = false;
            drained = undefined;
            resolve();
          };
          call.on('drain', done).on('close', done);
        });
        return drained;
      },
      close: () => {
        call.end();
        call.cancel();
      },
    };
  }

  // ------------------------------------------------------------- plumbing

  private unary<Res>(client: grpc.Client, method: string, req: unknown, opts: CallOptions = {}): Promise<Res> {
    return unaryCall(client, method, req, { ...opts, timeoutMs: opts.timeoutMs ?? this.timeoutMs });
  }

  private async *stream<T>(method: string, open: (o: grpc.CallOptions) => grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>, opts: CallOptions): AsyncIterable<T> {
    opts.signal?.throwIfAborted();
    const call = open({ deadline: deadlineOf(opts.timeoutMs ?? Infinity) });
    let cancelled = false;
    const cancel = (): void => {
      cancelled = true;
      call.cancel();
    };
    opts.signal?.addEventListener('abort', cancel, { once: true });
    try {
      for await (const msg of call) yield msg as T;
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (cancelled && e.code === grpc.status.CANCELLED) return;
      throw new ApiCallError(method, e.code ?? grpc.status.UNKNOWN, e.details ?? e.message, e.metadata);
    } finally {
      opts.signal?.removeEventListener('abort', cancel);
      call.cancel();
    }
  }
}

/**
 * One unary call of `method` on a generated client, cancelled by `opts.signal`; a
 * failure rejects with ApiCallError. netcubed's client and a service's config API
 * client (@netcube/sdk's service-client.ts) both call through it.
 */
export function unaryCall<Res>(client: grpc.Client, method: string, req: unknown, opts: CallOptions & { timeoutMs: number }): Promise<Res> {
  return new Promise((resolve, reject) => {
    opts.signal?.throwIfAborted();
    const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
    const call = fn(req, new grpc.Metadata(), { deadline: deadlineOf(opts.timeoutMs) }, (err, res) => {
      opts.signal?.removeEventListener('abort', cancel);
      if (err) reject(new ApiCallError(method, err.code, err.details, err.metadata));
      else resolve(res as Res);
    });
    const cancel = (): void => call.cancel();
    opts.signal?.addEventListener('abort', cancel, { once: true });
  });
}

function deadlineOf(timeoutMs: number): grpc.Deadline {
  return Number.isFinite(timeoutMs) ? Date.now() + timeoutMs : Infinity;
}

function pem(v: string | Buffer | undefined): Buffer | undefined {
  if (v === undefined) return undefined;
  return Buffer.isBuffer(v) ? v : fs.readFileSync(v);
}

/** The credentials and options of a channel to `opts.target`: a unix socket in the clear, TCP with TLS, the reply size limits. */
export function channelOf(opts: Pick<ClientOptions, 'target' | 'tls'>): { credentials: grpc.ChannelCredentials; options: grpc.ClientOptions } {
  const options: grpc.ClientOptions = { ...CLIENT_LIMITS };
  if (opts.target.startsWith('unix:')) {
    if (opts.tls) throw new TypeError('opts.tls: a unix socket is served without TLS');
    return { credentials: grpc.credentials.createInsecure(), options };
  }
  const tls = opts.tls ?? {};
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new TypeError('opts.tls: give both cert and key (a client certificate), or neither');
  if (tls.serverName) options['grpc.ssl_target_name_override'] = tls.serverName;
  return { credentials: grpc.credentials.createSsl(pem(tls.ca) ?? null, pem(tls.key) ?? null, pem(tls.cert) ?? null), options };
}
