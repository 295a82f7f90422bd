// ARP for IPv4 over Ethernet (RFC 826).

import { checkUint } from './check';
import { formatIpv4, formatMac, ipv4Bytes, macBytes, type Ipv4Address, type MacAddress } from './addresses';
import { EtherType, truncatedHeader, type Decoded, type EthernetPayload } from './layer';

export const ArpOp = {
  REQUEST: 1,
  REPLY: 2,
} as const;

const HARDWARE_ETHERNET = 1;
const ARP_LENGTH = 28;

export interface ArpOptions {
  /** ArpOp.REQUEST or ArpOp.REPLY. */
  readonly op: number;
  readonly senderMac: MacAddress;
  readonly senderIp: Ipv4Address;
  /** Default 00:00:00:00:00:00, what a request carries. */
  readonly targetMac?: MacAddress;
  readonly targetIp: Ipv4Address;
}

export function arp(options: ArpOptions): EthernetPayload {
  const bytes = Buffer.alloc(ARP_LENGTH);
  bytes.writeUInt16BE(HARDWARE_ETHERNET, 0);
  bytes.writeUInt16BE(EtherType.IPV4, 2);
  bytes[4] = 6;
  bytes[5] = 4;
  bytes.writeUInt16BE(checkUint(options.op, 16, 'arp.op'), 6);
  macBytes(options.senderMac, 'arp.senderMac').copy(bytes, 8);
  ipv4Bytes(options.senderIp, 'arp.senderIp').copy(bytes, 14);
  if (options.targetMac !== undefined) macBytes(options.targetMac, 'arp.targetMac').copy(bytes, 18);
  ipv4Bytes(options.targetIp, 'arp.targetIp').copy(bytes, 24);
  return { ethertype: EtherType.ARP, bytes };
}

export interface ParsedArp {
  readonly op: number;
  readonly senderMac: string;
  readonly senderIp: string;
  readonly targetMac: string;
  readonly targetIp: string;
}

export function decodeArp(bytes: Buffer): Decoded<ParsedArp> {
  if (bytes.length < 8) return truncatedHeader(bytes);
  const htype = bytes.readUInt16BE(0);
  const ptype = bytes.readUInt16BE(2);
  if (htype !== HARDWARE_ETHERNET || ptype !== EtherType.IPV4 || bytes[4] !== 6 || bytes[5] !== 4) {
    return {
      payload: bytes,
      truncated: false,
      malformed: `arp: only Ethernet/IPv4 is decoded, got hardware type ${htype} (${bytes[4]} bytes), protocol 0x${ptype.toString(16)} (${bytes[5]} bytes)`,
    };
  }
  if (bytes.length < ARP_LENGTH) return truncatedHeader(bytes);
  return {
    header: {
      op: bytes.readUInt16BE(6),
      senderMac: formatMac(bytes.subarray(8, 14)),
      senderIp: formatIpv4(bytes.subarray(14, 18)),
      targetMac: formatMac(bytes.subarray(18, 24)),
      targetIp: formatIpv4(bytes.subarray(24, 28)),
    },
    payload: bytes.subarray(ARP_LENGTH, ARP_LENGTH),
    truncated: false,
    trailer: bytes.subarray(ARP_LENGTH),
  };
}
