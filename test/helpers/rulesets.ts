// Firewall rule sets as an administrator writes them, for the firewall's tests and
// the p9 benchmark: a mix of allowed services per client subnet, blocked hosts,
// port ranges, DNS and NTP, ICMP, IPv6, in a fixed pseudo-random order (seeded, so
// every run compiles the same rules). One rule, `match` rules from the end, is
// the only one a probe flow meets: 10.250.0.0/24 -> 192.168.250.1 UDP port 9 (the
// test stream's port, which the benchmarks' sinks count).
import type { Rule } from '@netcube/firewall/tables';

/** The probe flow that only the rule `match` from the end accepts. */
export const PROBE = { src: '10.250.0.7', dst: '192.168.250.1', protocol: 17, sport: 4000, dport: 9 } as const;

/** A small deterministic generator (LCG), so rule sets are the same in every run. */
export function seeded(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

const SERVICE_PORTS = [22, 25, 53, 80, 110, 143, 443, 465, 587, 993, 995, 1433, 3306, 5432, 6379, 8080, 8443, 9200, 11211, 27017];

/**
 * `count` rules; the probe's rule sits `fromEnd` rules before the end (default 10),
 * so a list of rules evaluated in order passes all the others first.
 */
export function adminRules(count: number, fromEnd = 10, seed = 1): Rule[] {
  const rnd = seeded(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const n = (max: number): number => Math.floor(rnd() * max);
  const rules: Rule[] = [];
  while (rules.length < count - 1) {
    const kind = rnd();
    // Client subnets 10.0-199.x.0/24, servers 192.168.0-199.x: never the probe's 10.250 and 192.168.250.
    const client = `10.${n(200)}.${n(256)}.0/24`;
    const server = `192.168.${n(200)}.${1 + n(254)}`;
    if (kind < 0.35) rules.push({ action: 'accept', src: client, dst: server, protocol: 'tcp', dport: pick(SERVICE_PORTS) });
    else if (kind < 0.45) rules.push({ action: 'accept', src: `10.${n(200)}.0.0/16`, dst: `192.168.${n(200)}.0/24`, protocol: 'udp', dport: pick([53, 123, 514, 161]) });
    else if (kind < 0.55) {
      const base = 8000 + 100 * n(20);
      rules.push({ action: 'accept', src: client, dst: `192.168.${n(200)}.0/24`, protocol: 'tcp', dport: `${base}-${base + 99}` });
    } else if (kind < 0.65) rules.push({ action: 'drop', src: `10.${n(200)}.${n(256)}.${1 + n(254)}` });
    else if (kind < 0.75) rules.push({ action: 'accept', src: `2001:db8:${n(0x10000).toString(16)}::/48`, dst: `2001:db8:ffff::${(1 + n(0xfffe)).toString(16)}`, protocol: 'tcp', dport: pick(SERVICE_PORTS) });
    else if (kind < 0.8) rules.push({ action: 'accept', src: `10.${n(200)}.0.0/16`, protocol: 'icmp' });
    else if (kind < 0.9) rules.push({ action: 'drop', dst: `192.168.${n(200)}.0/24`, protocol: 'tcp', dport: pick([23, 135, 139, 445, 3389]) });
    else rules.push({ action: 'drop', src: client, dst: server, protocol: 'udp', sport: `${1024 + n(1000)}-65535`, dport: pick([9, 69, 161, 1900]) });
  }
  rules.splice(Math.max(0, rules.length - (fromEnd - 1)), 0, { action: 'accept', src: '10.250.0.0/24', dst: PROBE.dst, protocol: 'udp', dport: PROBE.dport });
  return rules;
}
