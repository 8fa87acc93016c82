import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { Agent, buildConnector } from 'undici';
import { AppError } from '../../http/errors.js';

// Merchants choose webhook URLs, so without a guard any merchant could make our worker POST into our
// own network (the database, Redis, cloud metadata at 169.254.169.254). The guard runs where the
// socket is opened: every address a host name resolves to is checked, and the socket connects to
// exactly the checked addresses, so a second DNS answer (rebinding) can never slip in between the
// check and the connect.

/** Thrown (or passed to a connect callback) when a target address is refused. */
export class SsrfBlockedError extends Error {
  readonly code = 'ERR_SSRF_BLOCKED';

  constructor(
    readonly host: string,
    readonly address: string,
    readonly range: string,
  ) {
    super(
      host === address
        ? `refused to connect to ${address} (${range} address)`
        : `refused to connect to ${host}: it resolves to ${address} (${range} address)`,
    );
    this.name = 'SsrfBlockedError';
  }
}

/** Whether the guard lets private networks through (WEBHOOK_ALLOW_PRIVATE_NETWORKS). */
export interface SsrfPolicy {
  allowPrivate: boolean;
}

// Never a sensible target, even on a developer's machine: 0.0.0.0 means "this host" to some stacks.
// IPv4-compatible addresses of public IPv4 hosts (::8.8.8.8) are deprecated and only ever a disguise.
const ALWAYS_REFUSED = new Set(['unspecified', 'multicast', 'broadcast', 'ipv4Compatible']);

/**
 * The range of an IP address as ipaddr.js names it ('unicast' for public addresses, 'private',
 * 'loopback', 'linkLocal', 'uniqueLocal', 'carrierGradeNat', 'reserved', ...). IPv4-mapped IPv6
 * addresses are classified as the IPv4 address they carry, so ::ffff:127.0.0.1 is 'loopback'.
 */
export function classifyAddress(address: string): string {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  // net.isIP is strict (no "127.1" or hex forms), so only canonical literals are parsed here; a name
  // that only looks like an address is 'invalid' and refused.
  if (net.isIP(bare) === 0) return 'invalid';
  const parsed = ipaddr.parse(bare);
  if (parsed.kind() === 'ipv6') {
    // Canonicalised by the WHATWG URL parser first: ipaddr.js reads `::a.b.c.d` as if it were
    // `::ffff:a.b.c.d`, which would make ::8.8.8.8 look like a public IPv4-mapped address.
    const v6 = ipaddr.IPv6.parse(new URL(`http://[${bare}]/`).hostname.slice(1, -1));
    if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().range();
    if (isIpv4Compatible(v6)) {
      // ::a.b.c.d (deprecated IPv4-compatible form, ::/96): some stacks still route it to the IPv4
      // address, so it is classified as that address, and never counts as public itself.
      const [, , , , , , high = 0, low = 0] = v6.parts;
      const range = new ipaddr.IPv4([high >> 8, high & 255, low >> 8, low & 255]).range();
      return range === 'unicast' ? 'ipv4Compatible' : range;
    }
    return v6.range();
  }
  return ipaddr.IPv4.parse(bare).range();
}

/** ::/96 except :: and ::1 (which ipaddr.js already names unspecified and loopback). */
function isIpv4Compatible(v6: ipaddr.IPv6): boolean {
  const parts = v6.parts;
  return parts.slice(0, 6).every((p) => p === 0) && ((parts[6] ?? 0) !== 0 || (parts[7] ?? 0) > 1);
}

/** Why an address is refused under a policy, or null when it may be connected to. */
export function refusalReason(address: string, policy: SsrfPolicy): string | null {
  const range = classifyAddress(address);
  // Allow-list: only globally routable unicast is public. Everything ipaddr.js puts in a special range
  // (NAT64, 6to4, Teredo, documentation, benchmarking, ...) is refused unless private is allowed.
  if (range === 'unicast') return null;
  if (range === 'invalid' || ALWAYS_REFUSED.has(range)) return range;
  return policy.allowPrivate ? null : range;
}

function isLocalhostName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

function bareHost(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

/**
 * Checks a URL without DNS: a literal IP in a refused range or `localhost` gives a reason, anything
 * else null. Used when a merchant saves a URL; delivery checks again after resolving the name.
 */
export function checkUrlTarget(url: URL, policy: SsrfPolicy): string | null {
  // user:pass@ in a webhook URL is never needed (receivers verify the signature) and hides the host
  // from people reading it.
  if (url.username !== '' || url.password !== '') return 'the URL carries credentials (user:pass@)';
  const host = bareHost(url.hostname);
  if (net.isIP(host) !== 0) {
    const reason = refusalReason(host, policy);
    return reason === null ? null : `${host} is a ${reason} address`;
  }
  if (!policy.allowPrivate && isLocalhostName(host)) return `${host} is a loopback host name`;
  return null;
}

/** Throws a 400 validation_error (field `url`) when a URL targets a refused literal address or localhost. */
export function assertPublicUrl(url: string | URL, options: { allowPrivate: boolean }): void {
  const parsed = typeof url === 'string' ? URL.parse(url) : url;
  if (parsed === null) throw urlError('must be an absolute http or https URL');
  if (parsed.username !== '' || parsed.password !== '') {
    throw urlError('must not carry credentials (user:pass@); receivers verify the signature instead');
  }
  const reason = checkUrlTarget(parsed, options);
  if (reason !== null) {
    throw urlError(`private, loopback and link-local targets are not allowed (${reason})`);
  }
}

function urlError(message: string): AppError {
  return new AppError('validation_error', `url: ${message}`, { issues: [{ field: 'url', message }] });
}

/** Resolves a host name to every address it has (dns.lookup with all: true, as the OS would). */
export type Resolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

const systemResolver: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/**
 * A `lookup` for net/tls.connect that resolves the name, refuses it when ANY address is in a refused
 * range, and hands back only the checked addresses, so the socket is pinned to what was checked.
 */
export function createGuardedLookup(options: SsrfPolicy & { resolve?: Resolver }): LookupFunction {
  const resolve = options.resolve ?? systemResolver;
  return (hostname, lookupOptions, callback) => {
    resolve(hostname).then(
      (all) => {
        // Respect a family the caller asked for (net passes 4 or 6 when the socket is pinned to one).
        const family = lookupOptions.family === 4 || lookupOptions.family === 6 ? lookupOptions.family : 0;
        const addresses = all.filter((a) => family === 0 || a.family === family);
        const first = addresses[0];
        if (!first) {
          const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
            code: 'ENOTFOUND',
            hostname,
          });
          callback(error, '', 0);
          return;
        }
        // Every address, not just the first: with autoSelectFamily net may try any of them.
        for (const { address } of all) {
          const reason = refusalReason(address, options);
          if (reason !== null) {
            callback(new SsrfBlockedError(hostname, address, reason), '', 0);
            return;
          }
        }
        if (lookupOptions.all) {
          // The overloads of LookupFunction do not model the `all` form, which net uses for
          // autoSelectFamily; the runtime accepts an array of { address, family } here.
          (callback as unknown as (err: null, list: typeof addresses) => void)(null, addresses);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (error: Error) => callback(error as NodeJS.ErrnoException, '', 0),
    );
  };
}

/**
 * An undici Agent whose every connection passes the guard: literal IP targets are checked before the
 * socket opens, names go through the guarded lookup. Redirects are never followed by callers.
 */
export function createGuardedAgent(
  options: SsrfPolicy & { resolve?: Resolver; connectTimeoutMs?: number },
): Agent {
  const connector = buildConnector({
    lookup: createGuardedLookup(options),
    timeout: options.connectTimeoutMs ?? 10_000,
  });
  return new Agent({
    connect(connectOptions, callback) {
      // net.connect skips `lookup` for literal IPs, so they are checked here, before any packet leaves.
      const host = bareHost(connectOptions.hostname);
      if (net.isIP(host) !== 0) {
        const reason = refusalReason(host, options);
        if (reason !== null) {
          const error = new SsrfBlockedError(host, host, reason);
          queueMicrotask(() => callback(error, null));
          return;
        }
      }
      connector(connectOptions, callback);
    },
  });
}

/** The guard's refusal behind an error (undici may wrap it as a cause), or null for other errors. */
export function findSsrfRefusal(error: unknown): SsrfBlockedError | null {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth += 1) {
    if (current instanceof SsrfBlockedError) return current;
    current = current.cause;
  }
  return null;
}
