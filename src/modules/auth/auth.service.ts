import { createHash, hkdfSync } from 'node:crypto';
import { hash as argonHash, verify as argonVerify } from '@node-rs/argon2';
import { jwtVerify, SignJWT } from 'jose';
import { sql } from 'kysely';
import type { Config } from '../../config.js';
import { decodeKey } from '../../config.js';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { randomSecret, sha256Hex } from '../../lib/tokens.js';
import type { Role } from './permissions.js';

/** A signed-in person as every portal and admin route sees them. */
export interface SessionUser {
  userId: string;
  merchantId: string | null;
  role: Role;
  email: string;
}

/** Access and refresh tokens handed out at login and on every refresh. */
export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  user: {
    id: string;
    email: string;
    name: string | null;
    role: Role;
    merchantId: string | null;
    locale: string;
  };
}

/** Which door a login came through: merchant staff use the portal, operators the admin panel. */
export type Audience = 'portal' | 'admin';

/**
 * The key that signs access tokens: JWT_SECRET, or one derived from APP_ENCRYPTION_KEY (configured,
 * or the installation's own). Never a key from the source: without either, no token is signed.
 */
export function accessTokenKey(config: Config): Uint8Array {
  if (config.JWT_SECRET) return createHash('sha256').update(config.JWT_SECRET).digest();
  const base = config.APP_ENCRYPTION_KEY ? decodeKey(config.APP_ENCRYPTION_KEY) : null;
  if (!base) throw new Error('No key to sign access tokens: set JWT_SECRET or APP_ENCRYPTION_KEY');
  return new Uint8Array(hkdfSync('sha256', base, Buffer.alloc(0), 'loyalty access tokens', 32));
}

/** Hashes a password with argon2id. */
export function hashPassword(password: string): Promise<string> {
  return argonHash(password);
}

/** Creates a portal user (merchant staff) or a platform operator (merchantId null, role operator). */
export async function createPortalUser(
  db: Executor,
  options: {
    merchantId: string | null;
    email: string;
    password: string;
    role: Role;
    name?: string | null;
    locale?: 'ru' | 'en';
  },
): Promise<{ id: string; email: string; role: Role }> {
  if (options.password.length < 8) throw new AppError('validation_error', 'password: at least 8 characters');
  const row = await db
    .insertInto('portal_users')
    .values({
      merchant_id: options.merchantId,
      email: options.email.trim(),
      name: options.name ?? null,
      password_hash: await hashPassword(options.password),
      role: options.role,
      locale: options.locale ?? 'ru',
    })
    // Unique per merchant (operators among operators): a conflict only ever names the caller's own staff.
    .onConflict((oc) => oc.doNothing())
    .returning(['id', 'email'])
    .executeTakeFirst();
  if (!row) {
    const where = options.merchantId ? "on this merchant's staff" : 'among the operators';
    throw new AppError('user_exists', `A user with email ${options.email} already exists ${where}`);
  }
  return { id: row.id, email: row.email, role: options.role };
}

const AUDIENCE_ROLES: Record<Audience, Role[]> = {
  portal: ['owner', 'admin', 'manager', 'cashier'],
  admin: ['operator'],
};

async function issueTokens(
  db: Executor,
  config: Config,
  user: {
    id: string;
    email: string;
    name: string | null;
    role: Role;
    merchant_id: string | null;
    locale: string;
  },
  options: { familyId?: string; userAgent?: string; ip?: string },
): Promise<TokenPair> {
  const ttl = config.PORTAL_ACCESS_TOKEN_TTL_SECONDS;
  const accessToken = await new SignJWT({ mid: user.merchant_id, role: user.role, email: user.email })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user.id)
    .setIssuedAt()
    .setExpirationTime(`${ttl}s`)
    .setIssuer('loyalty')
    .sign(accessTokenKey(config));
  const refreshToken = randomSecret('lr_', 32);
  await db
    .insertInto('refresh_tokens')
    .values({
      user_id: user.id,
      family_id: options.familyId ?? crypto.randomUUID(),
      token_hash: sha256Hex(refreshToken),
      // Issued and checked by PostgreSQL's now(), so an app clock that jumps neither shortens nor extends it.
      expires_at: sql<Date>`now() + make_interval(days => ${config.PORTAL_REFRESH_TOKEN_TTL_DAYS})`,
      user_agent: options.userAgent?.slice(0, 300) ?? null,
      ip: options.ip ?? null,
    })
    .execute();
  return {
    accessToken,
    refreshToken,
    expiresIn: ttl,
    user: {
      id: user.id,
      email: user.email,
      name: user.name,
      role: user.role,
      merchantId: user.merchant_id,
      locale: user.locale,
    },
  };
}

// A real hash to verify against when the email is unknown, so both cases take the same time.
let dummyHash: Promise<string> | null = null;

/**
 * Checks email and password; throws 401 invalid_credentials (the same for a wrong email or
 * password). Emails are unique per merchant, so one person may have accounts at several merchants:
 * the password picks the account, and when it opens more than one, 409 merchant_required lists
 * them (only to someone who knows that password) and the client signs in again with `merchantId`.
 */
export async function login(
  db: Executor,
  config: Config,
  options: {
    email: string;
    password: string;
    audience: Audience;
    merchantId?: string;
    userAgent?: string;
    ip?: string;
  },
): Promise<TokenPair> {
  const candidates = await db
    .selectFrom('portal_users as u')
    .leftJoin('merchants as m', 'm.id', 'u.merchant_id')
    .select([
      'u.id',
      'u.email',
      'u.name',
      'u.role',
      'u.merchant_id',
      'u.locale',
      'u.password_hash',
      'u.disabled_at',
      'm.status',
      'm.name as merchant_name',
    ])
    .where(sql<string>`lower(u.email)`, '=', options.email.trim().toLowerCase())
    .where('u.role', 'in', AUDIENCE_ROLES[options.audience])
    .$if(options.merchantId !== undefined, (qb) => qb.where('u.merchant_id', '=', options.merchantId ?? null))
    .orderBy('u.created_at')
    .execute();
  dummyHash ??= hashPassword('not-a-real-password');
  const hashes = candidates.length > 0 ? candidates.map((c) => c.password_hash) : [await dummyHash];
  const verified = await Promise.all(
    hashes.map((hash) => argonVerify(hash, options.password).catch(() => false)),
  );
  const matches = candidates.filter((_, i) => verified[i]);
  const user = matches[0];
  if (!user) throw new AppError('invalid_credentials', 'Wrong email or password');
  if (matches.length > 1) {
    throw new AppError(
      'merchant_required',
      'This email and password open accounts at several merchants: sign in again with merchantId',
      { merchants: matches.map((m) => ({ id: m.merchant_id, name: m.merchant_name })) },
    );
  }
  if (user.disabled_at) throw new AppError('account_disabled', 'This account is disabled');
  if (user.status === 'suspended') throw new AppError('merchant_suspended', 'The merchant is suspended');
  await db.updateTable('portal_users').set({ last_login_at: new Date() }).where('id', '=', user.id).execute();
  return issueTokens(db, config, { ...user, role: user.role as Role }, options);
}

/**
 * Exchanges a refresh token for a new pair; the old one is used up. A token used twice means it
 * leaked: the whole family (every token descended from that login) is revoked.
 */
export async function refreshSession(
  db: Executor,
  config: Config,
  options: { refreshToken: string; audience: Audience; userAgent?: string; ip?: string },
): Promise<TokenPair> {
  const tokenHash = sha256Hex(options.refreshToken);
  // Marking the token used and reading it is one statement, so two concurrent refreshes of one
  // token cannot both succeed.
  const used = await db
    .updateTable('refresh_tokens')
    .set({ used_at: new Date() })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('revoked_at', 'is', null)
    .returning(['id', 'user_id', 'family_id', sql<boolean>`expires_at <= now()`.as('expired')])
    .executeTakeFirst();
  if (!used) {
    const known = await db
      .selectFrom('refresh_tokens')
      .select(['family_id'])
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    if (known) {
      await db
        .updateTable('refresh_tokens')
        .set({ revoked_at: new Date() })
        .where('family_id', '=', known.family_id)
        .where('revoked_at', 'is', null)
        .execute();
      throw new AppError(
        'refresh_token_reused',
        'This refresh token was already used; every session of it is revoked',
      );
    }
    throw new AppError('invalid_refresh_token', 'Unknown refresh token');
  }
  if (used.expired) throw new AppError('invalid_refresh_token', 'The refresh token expired');
  const user = await db
    .selectFrom('portal_users')
    .select(['id', 'email', 'name', 'role', 'merchant_id', 'locale', 'disabled_at'])
    .where('id', '=', used.user_id)
    .executeTakeFirst();
  if (!user || user.disabled_at || !AUDIENCE_ROLES[options.audience].includes(user.role as Role)) {
    throw new AppError('invalid_refresh_token', 'The account is no longer active');
  }
  return issueTokens(
    db,
    config,
    { ...user, role: user.role as Role },
    { ...options, familyId: used.family_id },
  );
}

/** Ends a session: revokes the refresh token's whole family. */
export async function logout(db: Executor, options: { refreshToken: string }): Promise<void> {
  const row = await db
    .selectFrom('refresh_tokens')
    .select('family_id')
    .where('token_hash', '=', sha256Hex(options.refreshToken))
    .executeTakeFirst();
  if (!row) return;
  await db
    .updateTable('refresh_tokens')
    .set({ revoked_at: new Date() })
    .where('family_id', '=', row.family_id)
    .where('revoked_at', 'is', null)
    .execute();
}

/** How far in the future an access token's issue time may be (clocks of replicas differ a little). */
const ACCESS_TOKEN_FUTURE_SKEW_SECONDS = 300;

/** Verifies an access token; throws 401 when it is missing, forged, expired or issued in the future. */
export async function verifyAccessToken(config: Config, token: string): Promise<SessionUser> {
  try {
    const { payload } = await jwtVerify(token, accessTokenKey(config), {
      issuer: 'loyalty',
      algorithms: ['HS256'],
      requiredClaims: ['exp', 'iat'],
    });
    if (typeof payload.sub !== 'string' || typeof payload.role !== 'string') throw new Error('claims');
    // A token issued while a server's clock ran ahead would otherwise outlive its TTL once the clock
    // is back: one dated in the future beyond a small tolerance is refused.
    if ((payload.iat ?? 0) > Date.now() / 1000 + ACCESS_TOKEN_FUTURE_SKEW_SECONDS) throw new Error('iat');
    return {
      userId: payload.sub,
      merchantId: typeof payload.mid === 'string' ? payload.mid : null,
      role: payload.role as Role,
      email: String(payload.email ?? ''),
    };
  } catch {
    throw new AppError('unauthorized', 'Missing, invalid or expired access token');
  }
}
