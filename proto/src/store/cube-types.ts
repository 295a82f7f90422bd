// The registry of cube types: what chains are validated against, and where hosts fetch
// the ELF objects of types registered at run time.

import { ChainValidationError, CubeMode, HostCheck, sameTableFacts, tableFacts, TableFacts, TypeCatalog, typeCatalog, validateChain } from '../chain';
import { cite, firstOf } from '../cite';
import { deleteOp, encode, Etcd, getOp, KeyValue, prefixOp, prefixUnchangedSince, putOp, unchangedSince } from './etcd';
import { AlreadyExistsError, ConflictError, NotFoundError, TypeInUseError, ValidationError } from './errors';
import { CHAINS_PREFIX, typeKey, TYPES_PREFIX } from './keys';
import { CubeObjects, cubeTypeProblems, cubeTypeValue, Decoded, decodeCubeType, decodeEach, decodeStoredChain, objectsDigest, RegisteredCubeType } from './records';
import { nameProblem } from '../names';

export interface CubeTypeUpload {
  name: string;
  transparent: boolean;
  microcubes: number;
  modes: CubeMode[];
  /** Declared by its objects (NC_DECREMENTS_TTL()); absent is false. */
  decrementsTtl?: boolean;
  /** Its tables, as the objects declare them (netcubed's CubeType.tables): what chains may size. */
  tables?: TableFacts[];
  /** One ELF object for each mode in `modes`. */
  objects: CubeObjects;
}

// etcd refuses requests over 1.5 MiB by default (--max-request-bytes); leave room for
// the rest of the transaction.
const MAX_VALUE_BYTES = 1.4 * 1024 * 1024;
// Another writer between our read and our write makes us check again, this many times.
const MAX_ROUNDS = 5;

export class CubeTypes {
  /**
   * Records decoded already, by key, as of their revision: a record is the same value
   * until it is written again, and decoding one (its objects, their digest) costs
   * milliseconds per megabyte. Registering n types reads every record each time;
   * without this, a host publishing its built-in types decoded O(n²) of them.
   */
  private readonly decoded = new Map<string, { revision: number; type: RegisteredCubeType }>();

  constructor(
    private readonly etcd: Etcd,
    private readonly hostCheck: HostCheck | undefined,
  ) {}

  private decode(kv: KeyValue): RegisteredCubeType {
    const known = this.decoded.get(kv.key);
    if (known?.revision === kv.modRevision) return known.type;
    const type = decodeCubeType(kv);
    this.decoded.set(kv.key, { revision: kv.modRevision, type });
    return type;
  }

  /** Every record of the prefix, decoded; what is no longer there is forgotten. */
  private decodeAll(kvs: readonly KeyValue[]): Decoded<RegisteredCubeType> {
    const present = new Set(kvs.map((kv) => kv.key));
    for (const key of this.decoded.keys()) if (!present.has(key)) this.decoded.delete(key);
    return decodeEach(kvs, TYPES_PREFIX, (kv) => this.decode(kv));
  }

  /**
   * Registers a type, or replaces it (unless `options.replace` is false: then
   * AlreadyExistsError). A replacement that would break a chain using the type (a
   * mode it runs in removed, more programs than its paths allow) is refused.
   * Uploading the same type again changes nothing.
   */
  async putType(upload: CubeTypeUpload, options: { replace?: boolean } = {}): Promise<RegisteredCubeType> {
    checkUpload(upload);
    const { name, transparent, microcubes, modes, objects } = upload;
    const decrementsTtl = upload.decrementsTtl === true;
    const tables = upload.tables?.map(tableFacts);
    const sha256 = objectsDigest(objects);
    for (let round = 1; ; round++) {
      const { types, broken: unreadable, chains, revision } = await this.snapshot(`register cube type ${name}`);
      const existing = types.find(t => t.name === name);
      // A record that cannot be read is replaced: registering the type again repairs it.
      const overwritten = existing?.revision ?? unreadable.find(b => b.name === name)?.revision ?? 0;
      if (existing && existing.sha256 === sha256 && sameInfo(existing, upload)) return existing;
      if (existing && options.replace === false) {
        throw new AlreadyExistsError(`cube type ${name} is already registered with other objects; unregister it first (no chain may use it)`);
      }

      const users = chains.filter(c => c.chain.spec.cubes.some(cube => cube.type === name));
      if (users.length > 0) {
        const replaced = typeCatalog([...types.filter(t => t.name !== name), { name, transparent, microcubes, modes, decrementsTtl, tables }]);
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
            `cube type ${name} cannot change that way: chains using it would break (${firstOf(broken.map(b => `chain ${b.chain}: ${b.issues}`), 3, ' | ')}); change those chains first`,
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
        ...(decrementsTtl ? { decrementsTtl } : {}),
        ...(tables ? { tables } : {}),
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
        [unchangedSince(typeKey(name), overwritten), prefixUnchangedSince(CHAINS_PREFIX, revision)],
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
    return this.decode(ranges[0][0]);
  }

  /** The registered types; one that cannot be read is left out (listTypesWithBroken has it). */
  async listTypes(): Promise<RegisteredCubeType[]> {
    return (await this.listTypesWithBroken()).values;
  }

  /** The registered types, and apart the records that cannot be read, with why. */
  async listTypesWithBroken(): Promise<Decoded<RegisteredCubeType>> {
    const { ranges } = await this.etcd.read('list cube types', [prefixOp(TYPES_PREFIX)]);
    return this.decodeAll(ranges[0]);
  }

  /** The registered types as validation sees them. */
  async catalog(): Promise<TypeCatalog> {
    return typeCatalog(await this.listTypes());
  }

  /** Refused with TypeInUseError while any chain has a cube of this type. */
  async deleteType(name: string): Promise<void> {
    checkTypeName(name);
    for (let round = 1; ; round++) {
      const { types, broken, chains, revision } = await this.snapshot(`delete cube type ${name}`);
      // A record that cannot be read can be deleted like any other.
      const existing = types.find(t => t.name === name) ?? broken.find(b => b.name === name);
      if (!existing) throw new NotFoundError(`cube type ${name} is not registered`);
      const users = chains.filter(c => c.chain.spec.cubes.some(cube => cube.type === name)).map(c => c.name);
      if (users.length > 0) {
        throw new TypeInUseError(
          `cube type ${name} is used by chain${users.length > 1 ? 's' : ''} ${firstOf(users, 10, ', ')}: delete those chains or move their cubes to another type first`,
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
    // What cannot be read is no type, and no chain that could use one.
    const types = this.decodeAll(ranges[0]);
    return { types: types.values, broken: types.broken, chains: decodeEach(ranges[1], CHAINS_PREFIX, decodeStoredChain).values, revision };
  }
}

function checkTypeName(name: string): void {
  const problem = typeof name === 'string' ? nameProblem(name, 'cube type name') : 'cube type name must be a string';
  if (problem) throw new ValidationError(problem);
}

function checkUpload(upload: CubeTypeUpload): void {
  const problems = cubeTypeProblems({ ...upload, objects: upload.objects ?? {} });
  if (problems.length > 0) {
    throw new ValidationError(`cube type ${cite(JSON.stringify(upload.name) ?? 'without a name')} is invalid: ${problems.join('; ')}`);
  }
}

function sameInfo(a: RegisteredCubeType, b: CubeTypeUpload): boolean {
  return (
    a.transparent === b.transparent &&
    a.microcubes === b.microcubes &&
    a.modes.join() === b.modes.join() &&
    (a.decrementsTtl === true) === (b.decrementsTtl === true) &&
    sameTables(a.tables, b.tables)
  );
}

/** An upload without tables (an older client) keeps what the record lists. */
function sameTables(had: readonly TableFacts[] | undefined, upload: readonly TableFacts[] | undefined): boolean {
  return upload === undefined || sameTableFacts(had, upload);
}

function busy(name: string): ConflictError {
  return new ConflictError(`cube type ${name}: chains or types kept changing meanwhile (${MAX_ROUNDS} tries); try again`);
}
