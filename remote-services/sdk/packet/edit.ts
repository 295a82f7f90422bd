// Changes to a finished frame that forwarding makes, for writing the frame a test
// expects out of a data plane. Each returns a new frame and leaves its input as it was.

import { checkBuffer, checkUint } from './check';
import { macBytes, type MacAddress } from './addresses';
import { updateChecksum } from './checksum';
import { decodeEthernet } from './ethernet';
import { EtherType } from './layer';

/** Sets the IPv4 TTL, updating the header checksum as a router does (RFC 1624), or the IPv6 hop limit. */
export function setTtl(frame: Buffer, ttl: number): Buffer {
  checkUint(ttl, 8, 'ttl');
  const copy = Buffer.from(checkBuffer(frame, 'frame'));
  const ip = locateIp(copy, 'setTtl');
  if (ip.version === 6) {
    copy[ip.offset + 7] = ttl;
    return copy;
  }
  const oldWord = copy.readUInt16BE(ip.offset + 8); // TTL and protocol share a checksummed word
  const newWord = (ttl << 8) | (oldWord & 0xff);
  copy.writeUInt16BE(newWord, ip.offset + 8);
  copy.writeUInt16BE(updateChecksum(copy.readUInt16BE(ip.offset + 10), oldWord, newWord), ip.offset + 10);
  return copy;
}

/** Lowers the IPv4 TTL or IPv6 hop limit by one, as forwarding does. */
export function decrementTtl(frame: Buffer): Buffer {
  const ip = locateIp(checkBuffer(frame, 'frame'), 'decrementTtl');
  const ttl = frame[ip.offset + (ip.version === 4 ? 8 : 7)];
  if (ttl === 0) throw new RangeError(`decrementTtl: the ${ip.version === 4 ? 'TTL' : 'hop limit'} is already 0`);
  return setTtl(frame, ttl - 1);
}

/** Exchanges the Ethernet source and destination addresses. */
export function swapMacs(frame: Buffer): Buffer {
  checkFrame(frame, 'swapMacs');
  const copy = Buffer.from(frame);
  frame.copy(copy, 0, 6, 12);
  frame.copy(copy, 6, 0, 6);
  return copy;
}

/** Rewrites the Ethernet addresses given, as a router does for the next hop. */
export function setMacs(frame: Buffer, macs: { readonly src?: MacAddress; readonly dst?: MacAddress }): Buffer {
  checkFrame(frame, 'setMacs');
  const copy = Buffer.from(frame);
  if (macs.dst !== undefined) macBytes(macs.dst, 'setMacs.dst').copy(copy, 0);
  if (macs.src !== undefined) macBytes(macs.src, 'setMacs.src').copy(copy, 6);
  return copy;
}

function checkFrame(frame: Buffer, caller: string): void {
  checkBuffer(frame, 'frame');
  if (frame.length < 14) throw new RangeError(`${caller}: a ${frame.length}-byte frame has no Ethernet header`);
}

function locateIp(frame: Buffer, caller: string): { offset: number; version: 4 | 6 } {
  const eth = decodeEthernet(frame);
  if (eth.header === undefined) throw new RangeError(`${caller}: a ${frame.length}-byte frame has no Ethernet header`);
  const offset = frame.length - eth.payload.length;
  const { ethertype } = eth.header;
  if (ethertype === EtherType.IPV4 && eth.payload.length >= 20 && eth.payload[0] >> 4 === 4) return { offset, version: 4 };
  if (ethertype === EtherType.IPV6 && eth.payload.length >= 40 && eth.payload[0] >> 4 === 6) return { offset, version: 6 };
  throw new RangeError(`${caller}: the frame carries no whole IPv4 or IPv6 header (ethertype 0x${ethertype.toString(16).padStart(4, '0')})`);
}
