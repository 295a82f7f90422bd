// Decoding a whole frame into plain objects, one per layer. Never throws on packet
// contents: bytes that run out mark `truncated`, headers that make no sense mark
// `malformed`, and decoding stops at the first layer it cannot go past.

import { checkBuffer, checkUint } from './check';
import { decodeArp, type ParsedArp } from './arp';
import { decodeEthernet, type ParsedEthernet } from './ethernet';
import { decodeIcmp, isIcmpError, type ParsedIcmp } from './icmp';
import { decodeIcmpv6, isIcmpv6Error, type ParsedIcmpv6 } from './icmpv6';
import { decodeIpv4, type ParsedIpv4 } from './ipv4';
import { decodeIpv6, type ParsedIpv6 } from './ipv6';
import { EtherType, IpProtocol, type Decoded, type LayerName } from './layer';
import { decodeTcp, type ParsedTcp } from './tcp';
import { decodeUdp, type ParsedUdp } from './udp';
import type { PseudoHeader } from './checksum';

export interface ParsedPacket {
  arp?: ParsedArp;
  ipv4?: ParsedIpv4;
  ipv6?: ParsedIpv6;
  icmp?: ParsedIcmp;
  icmpv6?: ParsedIcmpv6;
  udp?: ParsedUdp;
  tcp?: ParsedTcp;
  /** What no layer decoded: the application data, or everything after the last layer understood. */
  payload: Buffer;
  /** Bytes past the end the network layer declares (Ethernet padding). */
  padding: Buffer;
  /**
   * The outermost layer whose header, or the length it declares, runs past the end of the
   * bytes. Layers inside it are decoded as far as the bytes go; one whose header does not
   * fit is absent.
   */
  truncated?: LayerName;
  /** Why decoding stopped at a header whose bytes are there but make no sense. */
  malformed?: string;
}

export interface ParsedFrame extends ParsedPacket {
  /** Absent only when the frame is shorter than an Ethernet header. */
  eth?: ParsedEthernet;
}

const EMPTY = Buffer.alloc(0);

export function parseFrame(frame: Buffer): ParsedFrame {
  checkBuffer(frame, 'frame');
  const eth = decodeEthernet(frame);
  if (eth.header === undefined) return { payload: frame, padding: EMPTY, truncated: 'eth' };
  return { eth: eth.header, ...decodeFrom(eth.payload, eth.header.ethertype, frame.length - eth.payload.length, true) };
}

/** Decodes a packet without an Ethernet header, e.g. from a tun device or an ICMP quote. */
export function parsePacket(bytes: Buffer, ethertype: number): ParsedPacket {
  checkBuffer(bytes, 'bytes');
  return decodeFrom(bytes, checkUint(ethertype, 16, 'ethertype'), 0, true);
}

type Layers = Omit<ParsedPacket, 'payload' | 'padding' | 'truncated' | 'malformed'>;

/** `offset` is where `bytes` start in the frame; `decodeQuotes` is false inside an ICMP quote. */
function decodeFrom(bytes: Buffer, ethertype: number, offset: number, decodeQuotes: boolean): ParsedPacket {
  const layers: Layers = {};
  let truncated: LayerName | undefined;
  let malformed: string | undefined;
  const take = <T>(layer: LayerName, decoded: Decoded<T>): T | undefined => {
    if (decoded.truncated) truncated ??= layer;
    if (decoded.malformed !== undefined) malformed ??= decoded.malformed;
    return decoded.header;
  };
  const result = (payload: Buffer, padding: Buffer = EMPTY): ParsedPacket => ({
    ...layers,
    payload,
    padding,
    ...(truncated !== undefined && { truncated }),
    ...(malformed !== undefined && { malformed }),
  });

  if (ethertype === EtherType.ARP) {
    const decoded = decodeArp(bytes);
    const arp = take('arp', decoded);
    if (arp) layers.arp = arp;
    return result(decoded.payload, decoded.trailer);
  }

  let network: Decoded<unknown>;
  let protocol: number;
  let pseudo: PseudoHeader | undefined;
  let transportOffset: number;
  if (ethertype === EtherType.IPV4) {
    const decoded = decodeIpv4(bytes, offset);
    const ip = take('ipv4', decoded);
    if (ip === undefined) return result(bytes);
    layers.ipv4 = ip;
    network = decoded;
    // A later fragment carries no transport header, and no fragment carries a whole segment to check.
    if (ip.fragmentOffset !== 0) return result(decoded.payload, decoded.trailer);
    protocol = ip.protocol;
    if (!decoded.truncated && !ip.mf) pseudo = { src: bytes.subarray(12, 16), dst: bytes.subarray(16, 20) };
    transportOffset = offset + ip.headerLength;
  } else if (ethertype === EtherType.IPV6) {
    const decoded = decodeIpv6(bytes, offset);
    const ip = take('ipv6', decoded);
    if (ip === undefined) return result(bytes);
    layers.ipv6 = ip;
    network = decoded;
    if (ip.protocol === IpProtocol.FRAGMENT) return result(decoded.payload, decoded.trailer);
    protocol = ip.protocol;
    if (!decoded.truncated && !ip.fragment) pseudo = { src: bytes.subarray(8, 24), dst: bytes.subarray(24, 40) };
    transportOffset = offset + ip.headerLength;
  } else {
    return result(bytes);
  }

  const segment = network.payload;
  const padding = network.trailer;
  switch (protocol) {
    case IpProtocol.UDP: {
      const decoded = decodeUdp(segment, transportOffset, pseudo);
      const udp = take('udp', decoded);
      if (udp) layers.udp = udp;
      return result(decoded.payload, padding);
    }
    case IpProtocol.TCP: {
      const decoded = decodeTcp(segment, transportOffset, pseudo);
      const tcp = take('tcp', decoded);
      if (tcp) layers.tcp = tcp;
      return result(decoded.payload, padding);
    }
    case IpProtocol.ICMP: {
      const decoded = decodeIcmp(segment, transportOffset, pseudo !== undefined);
      const icmp = take('icmp', decoded);
      if (icmp === undefined) return result(decoded.payload, padding);
      const quoted = decodeQuotes && isIcmpError(icmp.type);
      layers.icmp = quoted ? { ...icmp, quoted: decodeFrom(decoded.payload, EtherType.IPV4, transportOffset + 8, false) } : icmp;
      return result(decoded.payload, padding);
    }
    case IpProtocol.ICMPV6: {
      const decoded = decodeIcmpv6(segment, transportOffset, pseudo);
      const icmpv6 = take('icmpv6', decoded);
      if (icmpv6 === undefined) return result(decoded.payload, padding);
      const quoted = decodeQuotes && isIcmpv6Error(icmpv6.type);
      layers.icmpv6 = quoted ? { ...icmpv6, quoted: decodeFrom(decoded.payload, EtherType.IPV6, transportOffset + 8, false) } : icmpv6;
      return result(decoded.payload, padding);
    }
    default:
      return result(segment, padding);
  }
}
