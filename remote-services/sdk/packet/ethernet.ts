// Ethernet II frames with an optional 802.1Q tag.

import { checkBoolean, checkBuffer, checkUint, show } from './check';
import { formatMac, macBytes, type MacAddress } from './addresses';
import { EtherType, truncatedHeader, type Decoded, type EthernetPayload } from './layer';

/** Ethernet's minimum frame without the FCS; shorter frames are padded with zeros. */
export const MIN_FRAME_LENGTH = 60;

export interface VlanTag {
  /** VLAN identifier, 0..4095. */
  readonly id: number;
  /** Priority code point, 0..7; default 0. */
  readonly pcp?: number;
  /** Drop eligible indicator; default false. */
  readonly dei?: boolean;
}

export interface EthernetOptions {
  readonly dst: MacAddress;
  readonly src: MacAddress;
  readonly vlan?: VlanTag;
  /** ipv4(), ipv6() or arp(), or raw bytes with `ethertype`. */
  readonly payload: EthernetPayload | Buffer;
  /** Defaults to the payload layer's; required for raw bytes. */
  readonly ethertype?: number;
  /** Pad the frame with zeros up to this length; default 60, 0 for no padding. */
  readonly minLength?: number;
}

export function ethernet(options: EthernetOptions): Buffer {
  const dst = macBytes(options.dst, 'ethernet.dst');
  const src = macBytes(options.src, 'ethernet.src');
  const { payload } = options;
  let bytes: Buffer;
  let ethertype: number | undefined = options.ethertype;
  if (Buffer.isBuffer(payload)) {
    bytes = payload;
    if (ethertype === undefined) throw new TypeError('ethernet.ethertype is required when the payload is a Buffer');
  } else if (typeof payload === 'object' && payload !== null && Buffer.isBuffer(payload.bytes)) {
    bytes = payload.bytes;
    ethertype ??= payload.ethertype;
  } else {
    throw new TypeError(`ethernet.payload must be ipv4(), ipv6(), arp() or a Buffer, got ${show(payload)}`);
  }
  checkUint(ethertype, 16, 'ethernet.ethertype');
  const minLength = checkUint(options.minLength ?? MIN_FRAME_LENGTH, 16, 'ethernet.minLength');

  const headerLength = options.vlan ? 18 : 14;
  const frame = Buffer.alloc(Math.max(headerLength + bytes.length, minLength));
  dst.copy(frame, 0);
  src.copy(frame, 6);
  if (options.vlan) {
    frame.writeUInt16BE(EtherType.VLAN, 12);
    frame.writeUInt16BE(vlanTci(options.vlan), 14);
  }
  frame.writeUInt16BE(ethertype, headerLength - 2);
  bytes.copy(frame, headerLength);
  return frame;
}

function vlanTci(vlan: VlanTag): number {
  const id = checkUint(vlan.id, 12, 'ethernet.vlan.id');
  const pcp = checkUint(vlan.pcp ?? 0, 3, 'ethernet.vlan.pcp');
  const dei = checkBoolean(vlan.dei ?? false, 'ethernet.vlan.dei');
  return (pcp << 13) | (dei ? 0x1000 : 0) | id;
}

export interface ParsedEthernet {
  readonly dst: string;
  readonly src: string;
  readonly vlan?: Required<VlanTag>;
  /** The EtherType after the tag, if any. */
  readonly ethertype: number;
}

/** Decodes the Ethernet header and one 802.1Q tag; the payload keeps any padding. */
export function decodeEthernet(frame: Buffer): Decoded<ParsedEthernet> {
  checkBuffer(frame, 'frame');
  if (frame.length < 14) return truncatedHeader(frame);
  const dst = formatMac(frame.subarray(0, 6));
  const src = formatMac(frame.subarray(6, 12));
  if (frame.readUInt16BE(12) !== EtherType.VLAN) {
    return { header: { dst, src, ethertype: frame.readUInt16BE(12) }, payload: frame.subarray(14), truncated: false };
  }
  if (frame.length < 18) return truncatedHeader(frame);
  const tci = frame.readUInt16BE(14);
  const vlan = { id: tci & 0x0fff, pcp: tci >> 13, dei: (tci & 0x1000) !== 0 };
  return { header: { dst, src, vlan, ethertype: frame.readUInt16BE(16) }, payload: frame.subarray(18), truncated: false };
}
