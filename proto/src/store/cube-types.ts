// The registry of cube types: what chains are validated against, and where hosts fetch
// the ELF objects of types registered at run time.

import { createHash } from 'node:crypto';
import {
  ChainValidationError,
  CUBE_MODES,
  CubeMode,
  MAX_MICROCUBES,
  nameProblem,
  HostCheck,
  TypeCatalog,
  typeCatalog,
  validateChain,
} from '../chain';
import { deleteOp, encode, Etcd, getOp, prefixOp, prefixUnchangedSince, putOp, unchangedSince } from './etcd';
import { AlreadyExistsError, ConflictError, NotFoundError, TypeInUseError, ValidationError } from './errors';
import { CHAINS_PREFIX, typeKey, TYPES_PREFIX } from './keys';
import { CubeObjects, cubeTypeValue, decodeCubeType, decodeStoredChain, RegisteredCubeType } from './records';

export interface CubeTypeUpload {
  name: string;
  transparent: boolean;
  microcubes: number;
  modes: CubeMode[];
  /** One ELF object for each mode in `modes`. */
  objects: CubeObjects;
}

// etcd refuses requests over 1.5 MiB by default (--max-request-bytes); leave room for
// the rest of the transaction.
const MAX_VALUE_BYTES = 1.4 * 1024 * 1024;
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
// Another writer between our read and our write makes us check again, this many times.
const MAX_ROUNDS = 5;

export class CubeTypes {
  constructor(
    private readonly etcd: Etcd,
    private readonly hostCheck: HostCheck | undefined,
  ) {}

  /**
   * Registers a type, or replaces it (unless `options.replace` is false: then
   * AlreadyExistsError). A replacement that would break a chain using the type (a
   * mode it runs in removed, more programs than its paths allow) is refused.
   * Uploading the same type again changes nothing.
   */
  async putType(upload: CubeTypeUpload, options: { replace?: boolean } = {}): Promise<RegisteredCubeType> {
    checkUpload(upload);
    const { name, transparent, microcubes, modes, objects } = upload;
    const sha256 = digest(objects);
    for (let round = 1; ; round++) {
      const { types, chains, revision } = await this.snapshot(`register cube type ${name}`);
      const existing = types.find(t => t.name === name);
      if (existing && existing.sha256 === sha256 && sameInfo(existing, upload)) return existing;
      if (existing && options.replace === false) {
        throw new AlreadyExistsError(`cube type ${name} is already registered with other objects; unregister it first (no chain may use it)`);
      }

      const users = chains.filter(c => c.chain.spec.cubes.some(cube => cube.type === name));
      if (users.length > 0) {
        const replaced = typeCatalog([...types.filter(t => t.name !== name), { name, transparent, microcubes, modes }]);
        const broken = users.flatMap(user => {
          try {
            validateChain(user.chain, { types: replaced, otherChains: chains.map(c => c.chain), hostCheck: this.hostCheck });
            return [];
          } catch (err) {
            if (!(err instanceof ChainValidationError)) throw err;
            return [{ chain: user.name, issues: err.issues.map(i => `${i.path}: ${i.message}`).join('; ') }];
          }
        });
        if (broken.length > 0) {
          throw new TypeInUseError(
            `cube type ${name} cannot change that way: chains using it would break (${broken.map(b => `chain ${b.chain}: ${b.issues}`).join(' | ')}); change those chains first`,
            name,
            broken.map(b => b.chain),
          );
        }
      }

      const registered: Omit<RegisteredCubeType, 'revision'> = {
        name,
        transparent,
        microcubes,
        modes: [...modes],
        objects: { ...objects },
        sha256,
        registeredAt: new Date().toISOString(),
      };
      const value = cubeTypeValue(registered);
      const size = encode(value).length;
      if (size > MAX_VALUE_BYTES) {
        throw new ValidationError(`cube type ${name} is ${size} bytes once encoded, over the ${MAX_VALUE_BYTES} etcd accepts: strip debug sections other than BTF from its objects (llvm-strip -g)`);
      }
      const result = await this.etcd.write(
        `register cube type ${name}`,
        [unchangedSince(typeKey(name), existing?.revision ?? 0), prefixUnchangedSince(CHAINS_PREFIX, revision)],
        [putOp(typeKey(name), value)],
      );
      if (result.succeeded) return { ...registered, revision: result.revision };
      if (round === MAX_ROUNDS) throw busy(name);
    }
  }

  async getType(name: string): Promise<RegisteredCubeType> {
    checkTypeName(name);
    const { ranges } = await this.etcd.read(`read cube type ${name}`, [getOp(typeKey(name))]);
    if (ranges[0].length === 0) throw new NotFoundError(`cube type ${name} is not registered`);
    return decodeCubeType(ranges[0][0]);
  }

  async listTypes(): Promise<RegisteredCubeType[]> {
    const { ranges } = await this.etcd.read('list cube types', [prefixOp(TYPES_PREFIX)]);
    return ranges[0].map(decodeCubeType);
  }

  /** The registered types as validation sees them. */
  async catalog(): Promise<TypeCatalog> {
    return typeCatalog(await this.listTypes());
  }

  /** Refused with TypeInUseError while any chain has a cube of this type. */
  async deleteType(name: string): Promise<void> {
    checkTypeName(name);
    for (let round = 1; ; round++) {
      const { types, chains, revision } = await this.snapshot(`delete cube type ${name}`);
      const existing = types.find(t => t.name === name);
      if (!existing) throw new NotFoundError(`cube type ${name} is not registered`);
      const users = chains.filter(c => c.chain.spec.cubes.some(cube => cube.type === name)).map(c => c.name);
      if (users.length > 0) {
        throw new TypeInUseError(
          `cube type ${name} is used by chain${users.length > 1 ? 's' : ''} ${users.join(', ')}: delete those chains or move their cubes to another type first`,
          name,
          users,
        );
      }
      const result = await this.etcd.write(
        `delete cube type ${name}`,
        // A chain applied meanwhile may have started using it.
        [unchangedSince(typeKey(name), existing.revision), prefixUnchangedSince(CHAINS_PREFIX, revision)],
        [deleteOp(typeKey(name))],
      );
      if (result.succeeded) return;
      if (round === MAX_ROUNDS) throw busy(name);
    }
  }

  private async snapshot(operation: string) {
    const { ranges, revision } = await this.etcd.read(operation, [prefixOp(TYPES_PREFIX), prefixOp(CHAINS_PREFIX)]);
    return { types: ranges[0].map(decodeCubeType), chains: ranges[1].map(decodeStoredChain), revision };
  }
}

function checkTypeName(name: string): void {
  const problem = typeof name === 'string' ? nameProblem(name, 'cube type name') : 'cube type name must be a string';
  if (problem) throw new ValidationError(problem);
}

function checkUpload(upload: CubeTypeUpload): void {
  const problems: string[] = [];
  const nameIssue = typeof upload.name === 'string' ? nameProblem(upload.name, 'cube type name') : 'name must be a string';
  if (nameIssue) problems.push(nameIssue);
  if (typeof upload.transparent !== 'boolean') problems.push('transparent must be true or false');
  if (!Number.isInteger(upload.microcubes) || upload.microcubes < 1 || upload.microcubes > MAX_MICROCUBES) {
    problems.push(`microcubes must be an integer from 1 to ${MAX_MICROCUBES} (the programs a cube has slots for), got ${upload.microcubes}`);
  }
  const modes: unknown[] = Array.isArray(upload.modes) ? upload.modes : [];
  if (modes.length === 0 || modes.some(m => !CUBE_MODES.includes(m as CubeMode)) || new Set(modes).size !== modes.length) {
    problems.push(`modes must list xdp, tc or both, once each; got ${JSON.stringify(upload.modes)}`);
  }
  const objects = upload.objects ?? {};
  for (const mode of CUBE_MODES) {
    const object = objects[mode];
    if (modes.includes(mode) && !Buffer.isBuffer(object)) problems.push(`objects.${mode} is missing: upload the ${mode} ELF object`);
    if (!modes.includes(mode) && object !== undefined) problems.push(`objects.${mode} is given but modes does not list ${mode}`);
    if (Buffer.isBuffer(object) && !object.subarray(0, 4).equals(ELF_MAGIC)) {
      problems.push(`objects.${mode} is not an ELF object: upload the .o that clang -target bpf produced`);
    }
  }
  for (const key of Object.keys(objects)) {
    if (!CUBE_MODES.includes(key as CubeMode)) problems.push(`objects.${key}: unknown mode; objects are keyed xdp or tc`);
  }
  if (problems.length > 0) {
    throw new ValidationError(`cube type ${JSON.stringify(upload.name)} is invalid: ${problems.join('; ')}`);
  }
}

/** Over the objects in mode order, each framed by its mode and length so no two uploads collide. */
function digest(objects: CubeObjects): string {
  const hash = createHash('sha256');
  for (const mode of CUBE_MODES) {
    const object = objects[mode];
    if (object) hash.update(`${mode}:${object.length}:`).update(object);
  }
  return hash.digest('hex');
}

function sameInfo(a: RegisteredCubeType, b: CubeTypeUpload): boolean {
  return a.transparent === b.transparent && a.microcubes === b.microcubes && a.modes.join() === b.modes.join();
}

function busy(name: string): ConflictError {
  return new ConflictError(`cube type ${name}: chains or types kept changing meanwhile (${MAX_ROUNDS} tries); try again`);
}
