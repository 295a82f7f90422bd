// Calls to netcubed's API below the client: any bytes as a request (not protobuf at
// all, a mutated message, one past the client's own size limit), encoded or not by
// the method's own serializer. What comes back is the status, as a hostile or broken
// client would see it.

import * as grpc from '@grpc/grpc-js';
import { loadApi } from '@netcube/api/grpc/proto';

export interface RawStatus {
  code: grpc.status;
  codeName: string;
  details: string;
  /** The reply's bytes, when the call succeeded. */
  reply?: Buffer;
}

export interface MethodInfo {
  service: string;
  name: string;
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  /** The request message encoded by the method's own serializer. */
  encode(request: unknown): Buffer;
}

/** Every method of netcube.v1, with its serializer. */
export function apiMethods(): MethodInfo[] {
  const { api } = loadApi();
  const v1 = api.netcube.v1 as unknown as Record<string, { service: grpc.ServiceDefinition }>;
  return Object.entries(v1)
    .filter(([, value]) => typeof value === 'function' && 'service' in value)
    .flatMap(([service, { service: definition }]) =>
      Object.entries(definition).map(([name, m]) => ({
        service,
        name,
        path: m.path,
        requestStream: m.requestStream,
        responseStream: m.responseStream,
        encode: (request: unknown) => m.requestSerialize(request),
      })),
    );
}

/** A client that sends whatever bytes it is given, as large as they are. */
export class RawClient {
  private readonly client: grpc.Client;

  constructor(target: string) {
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
  }

  /** One call of `method` with `bytes` as its request: unary, or a stream of one message, read to its end. */
  call(method: MethodInfo, bytes: Buffer, timeoutMs = 10_000): Promise<RawStatus> {
    const identity = (b: Buffer): Buffer => b;
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve) => {
      const done = (err: grpc.ServiceError | null, reply?: Buffer): void => {
        const code = err ? err.code : grpc.status.OK;
        resolve({ code, codeName: grpc.status[code], details: err?.details ?? '', reply });
      };
      if (!method.requestStream && !method.responseStream) {
        this.client.makeUnaryRequest(method.path, identity, identity, bytes, { deadline }, (err, reply) => done(err, reply));
        return;
      }
      const call = method.requestStream
        ? this.client.makeBidiStreamRequest(method.path, identity, identity, { deadline })
        : this.client.makeServerStreamRequest(method.path, identity, identity, bytes, { deadline });
      let last: Buffer | undefined;
      call.on('data', (b: Buffer) => {
        last = b;
        // A stream that would go on (logs, packet-ins) has answered: enough.
        call.cancel();
      });
      call.on('error', (err: grpc.ServiceError) => done(err.code === grpc.status.CANCELLED && last ? null : err, last));
      call.on('end', () => done(null, last));
      if (method.requestStream) {
        (call as grpc.ClientDuplexStream<Buffer, Buffer>).write(bytes);
        (call as grpc.ClientDuplexStream<Buffer, Buffer>).end();
      }
    });
  }

  close(): void {
    this.client.close();
  }
}
