// A dependency-free packet library: build frames layer by layer, parse and describe
// them, and compare them. Used by data-plane tests (frames through BPF_PROG_TEST_RUN),
// by control planes answering in userspace (ARP, ICMP), and by the CLI's capture view.
//
//   const frame = ethernet({ src, dst, payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2',
//     payload: udp({ sport: 1234, dport: 80, payload: Buffer.from('hello') }) }) });
//   parseFrame(frame).udp?.dport === 80;
//   describe(frame) === '10.0.0.1.1234 > 10.0.0.2.80: UDP, length 5';

export {
  BROADCAST_MAC,
  cidrContains,
  formatCidr,
  formatIp,
  formatIpv4,
  formatIpv6,
  formatMac,
  ipv4FromNumber,
  ipv4ToNumber,
  ipv6MulticastMac,
  parseCidr,
  parseIp,
  parseIpv4,
  parseIpv6,
  parseMac,
  solicitedNodeAddress,
  type Cidr,
  type Ipv4Address,
  type Ipv6Address,
  type MacAddress,
} from './addresses';
export {
  checksumValid,
  icmpChecksum,
  internetChecksum,
  ipv4HeaderChecksum,
  onesComplementSum,
  pseudoHeaderSum,
  transportChecksum,
  updateChecksum,
} from './checksum';
export { EtherType, IpProtocol, type EthernetPayload, type IpPayload, type LayerName } from './layer';
export { ethernet, MIN_FRAME_LENGTH, type EthernetOptions, type ParsedEthernet, type VlanTag } from './ethernet';
export { arp, ArpOp, type ArpOptions, type ParsedArp } from './arp';
export { ipv4, type Ipv4Options, type ParsedIpv4 } from './ipv4';
export { ipv6, type Ipv6Fragment, type Ipv6Options, type ParsedIpv6 } from './ipv6';
export {
  icmp,
  icmpEchoReply,
  icmpEchoRequest,
  icmpTimeExceeded,
  IcmpTimeExceededCode,
  IcmpType,
  icmpUnreachable,
  IcmpUnreachableCode,
  type EchoFields,
  type EchoOptions,
  type IcmpErrorOptions,
  type IcmpOptions,
  type ParsedIcmp,
} from './icmp';
export {
  icmpv6,
  icmpv6EchoReply,
  icmpv6EchoRequest,
  Icmpv6Type,
  neighborAdvertisement,
  neighborSolicitation,
  type NeighborAdvertisementOptions,
  type NeighborDiscovery,
  type NeighborSolicitationOptions,
  type ParsedIcmpv6,
} from './icmpv6';
export { udp, type ParsedUdp, type UdpOptions } from './udp';
export { tcp, TcpFlags, type ParsedTcp, type TcpOptions } from './tcp';
export { parseFrame, parsePacket, type ParsedFrame, type ParsedPacket } from './parse';
export { describe } from './describe';
export { decrementTtl, setMacs, setTtl, swapMacs } from './edit';
export { diffFrames } from './diff';
