import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, decodeKey, loadConfig } from './config.js';
import { MIGRATIONS, migrateToLatest, readSchemaState, SchemaError } from './db/migrate.js';
import { AppError } from './http/errors.js';
import { normalizePhone } from './lib/phone.js';
import { createPortalUser } from './modules/auth/auth.service.js';
import type { StaffRole } from './modules/auth/permissions.js';
import { grantBirthdayBonuses } from './modules/campaigns/birthday.service.js';
import { createCustomer, issueCustomerToken } from './modules/customers/customers.service.js';
import { seedDemo } from './modules/demo/demo.service.js';
import { ensureAppKey, rotateSealedSecrets } from './modules/keys/keys.service.js';
import { releaseExpiredHolds } from './modules/ledger/holds.service.js';
import { activatePoints, expirePoints, remindExpiringPoints } from './modules/ledger/ledger.service.js';
import {
  createApiKey,
  createDevice,
  createManager,
  createMerchant,
  createOutlet,
  revokeApiKey,
} from './modules/merchants/merchants.service.js';
import { registerNotifyWebhook } from './modules/telegram/telegram.service.js';
import { createWebhookEndpoint } from './modules/webhooks/webhooks.service.js';
import { openRuntime, type Runtime } from './runtime.js';

// `npm run cli -- <command> [options]`: operator commands against DATABASE_URL. With --json a
// command prints exactly one JSON object on stdout (logs go to stderr).

type Flags = Record<string, string | boolean | undefined>;

interface Command {
  usage: string;
  needsDb: boolean;
  run(flags: Flags, rt: Runtime | null): Promise<Record<string, unknown>>;
  /** Lines printed without --json (default: one `key: value` line per field). */
  human?(result: Record<string, unknown>): string[];
}

class UsageError extends Error {}

function required(flags: Flags, name: string): string {
  const value = flags[name];
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`--${name} is required`);
  return value.trim();
}

/** The time --at names; undefined without it, so the database's now() decides, not this machine's clock. */
function at(flags: Flags): Date | undefined {
  const value = flags.at;
  if (typeof value !== 'string') return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new UsageError('--at expects an ISO 8601 time');
  return date;
}

// The old key of keys:rotate, given once: on the command line or, kept out of the shell history and
// the process list, in a file (e.g. the embedded database's key file).
function oldKeyOf(flags: Flags): string {
  const inline = typeof flags['old-key'] === 'string' ? flags['old-key'].trim() : '';
  const file = typeof flags['old-key-file'] === 'string' ? flags['old-key-file'] : '';
  if ((inline === '') === (file === ''))
    throw new UsageError('Give the old key once: --old-key <key> or --old-key-file <file>');
  if (inline) return inline;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    throw new UsageError(`--old-key-file: cannot read ${file}`);
  }
}

function dbOf(rt: Runtime | null) {
  if (!rt) throw new Error('database required');
  return rt.db;
}

const commands: Record<string, Command> = {
  'db:migrate': {
    usage: 'db:migrate                         apply pending migrations',
    needsDb: true,
    async run(_flags, rt) {
      const results = await migrateToLatest(dbOf(rt));
      const { unknown } = await readSchemaState(dbOf(rt));
      if (unknown.length > 0) {
        console.error(
          `note: the database also holds ${unknown.length} migration(s) this release does not know ` +
            `(${unknown.map((m) => m.name).join(', ')}): a newer release applied them`,
        );
      }
      return { applied: results.map((r) => r.migrationName) };
    },
  },
  'db:status': {
    usage:
      'db:status                          migrations: applied, pending, and applied ones this release does not know',
    needsDb: true,
    async run(_flags, rt) {
      const state = await readSchemaState(dbOf(rt));
      const iso = (m: { name: string; appliedAt: Date | null }) => ({
        name: m.name,
        appliedAt: m.appliedAt?.toISOString() ?? null,
      });
      return { migrations: state.known.map(iso), pending: state.pending, unknown: state.unknown.map(iso) };
    },
    human(result) {
      const status = result as {
        migrations: Array<{ name: string; appliedAt: string | null }>;
        pending: string[];
        unknown: Array<{ name: string; appliedAt: string | null }>;
      };
      const width = Math.max(24, ...[...status.migrations, ...status.unknown].map((m) => m.name.length + 2));
      const lines = status.migrations.map(
        (m) => `${m.name.padEnd(width)}${m.appliedAt ? `applied ${m.appliedAt}` : 'PENDING'}`,
      );
      for (const m of status.unknown) {
        lines.push(
          `${m.name.padEnd(width)}applied ${m.appliedAt ?? '?'}  NOT KNOWN to this release (a newer release applied it)`,
        );
      }
      const applied = status.migrations.length - status.pending.length;
      lines.push(
        `${applied} applied, ${status.pending.length} pending, ${status.unknown.length} unknown to this release ` +
          `(it knows ${Object.keys(MIGRATIONS).length})`,
      );
      if (status.pending.length > 0) lines.push('pending: run `npm run db:migrate`');
      return lines;
    },
  },
  'config:check': {
    usage:
      'config:check                       validate the environment (exit 1 listing every problem; --json: {ok, problems})',
    needsDb: false,
    async run(flags) {
      try {
        const { warnings } = loadConfig();
        return { ok: true, warnings };
      } catch (error) {
        if (!(error instanceof ConfigError) || !flags.json) throw error;
        // Each problem reads "VARIABLE: what is wrong".
        const problems = error.problems.map((p) => {
          const at = p.indexOf(': ');
          return at < 0
            ? { variable: null, message: p }
            : { variable: p.slice(0, at), message: p.slice(at + 2) };
        });
        return { ok: false, problems };
      }
    },
  },
  'demo:seed': {
    usage:
      'demo:seed                          create a demo merchant, key, outlet, device, cashier, customer',
    needsDb: true,
    async run(_flags, rt) {
      return { ...(await seedDemo(dbOf(rt))) };
    },
  },
  'admin:create': {
    usage: 'admin:create --email <e> --password <p>   create a platform operator (admin panel)',
    needsDb: true,
    async run(flags, rt) {
      const user = await createPortalUser(dbOf(rt), {
        merchantId: null,
        email: required(flags, 'email'),
        password: required(flags, 'password'),
        role: 'operator',
      });
      return { userId: user.id, email: user.email, role: user.role };
    },
  },
  'user:create': {
    usage: 'user:create --merchant <id> --email <e> --password <p> [--role owner|admin|manager|cashier]',
    needsDb: true,
    async run(flags, rt) {
      const role = typeof flags.role === 'string' ? flags.role : 'owner';
      if (!['owner', 'admin', 'manager', 'cashier'].includes(role)) {
        throw new UsageError('--role must be one of owner, admin, manager, cashier');
      }
      const user = await createPortalUser(dbOf(rt), {
        merchantId: required(flags, 'merchant'),
        email: required(flags, 'email'),
        password: required(flags, 'password'),
        role: role as StaffRole,
      });
      return { userId: user.id, email: user.email, role: user.role };
    },
  },
  'merchant:create': {
    usage: 'merchant:create --name <name>      create a merchant with the default programme',
    needsDb: true,
    async run(flags, rt) {
      const merchant = await createMerchant(dbOf(rt), { name: required(flags, 'name') });
      return { merchantId: merchant.id, name: merchant.name, rules: merchant.rules };
    },
  },
  'outlet:create': {
    usage: 'outlet:create --merchant <id> --name <name>',
    needsDb: true,
    async run(flags, rt) {
      const outlet = await createOutlet(dbOf(rt), {
        merchantId: required(flags, 'merchant'),
        name: required(flags, 'name'),
      });
      return { outletId: outlet.id, name: outlet.name };
    },
  },
  'device:create': {
    usage: 'device:create --merchant <id> --name <name> [--outlet <id>]',
    needsDb: true,
    async run(flags, rt) {
      const outletId = typeof flags.outlet === 'string' ? flags.outlet : undefined;
      const device = await createDevice(dbOf(rt), {
        merchantId: required(flags, 'merchant'),
        name: required(flags, 'name'),
        outletId,
      });
      return { deviceId: device.id, name: device.name };
    },
  },
  'manager:create': {
    usage: 'manager:create --merchant <id> --name <name> [--outlet <id>]',
    needsDb: true,
    async run(flags, rt) {
      const outletId = typeof flags.outlet === 'string' ? flags.outlet : undefined;
      const manager = await createManager(dbOf(rt), {
        merchantId: required(flags, 'merchant'),
        name: required(flags, 'name'),
        outletId,
      });
      return { managerId: manager.id, name: manager.name };
    },
  },
  'apikey:create': {
    usage: 'apikey:create --merchant <id> [--name <name>]   the key is shown once',
    needsDb: true,
    async run(flags, rt) {
      const name = typeof flags.name === 'string' ? flags.name : undefined;
      const key = await createApiKey(dbOf(rt), { merchantId: required(flags, 'merchant'), name });
      return { apiKeyId: key.id, apiKey: key.key, prefix: key.prefix };
    },
  },
  'apikey:revoke': {
    usage: 'apikey:revoke --merchant <id> --key-id <id>',
    needsDb: true,
    async run(flags, rt) {
      await revokeApiKey(dbOf(rt), {
        merchantId: required(flags, 'merchant'),
        keyId: required(flags, 'key-id'),
      });
      return { revoked: true };
    },
  },
  'customer:create': {
    usage: 'customer:create --merchant <id> --phone <e164> [--name <name>]   prints {customerId, token}',
    needsDb: true,
    async run(flags, rt) {
      const phone = normalizePhone(required(flags, 'phone'));
      if (!phone) throw new UsageError('--phone expects a phone number in E.164 format, e.g. +79991234567');
      const merchantId = required(flags, 'merchant');
      const name = typeof flags.name === 'string' ? flags.name : null;
      const customer = await createCustomer(dbOf(rt), { merchantId, phone, name, source: 'cli' });
      const token = await issueCustomerToken(dbOf(rt), { merchantId, customerId: customer.id });
      return { customerId: customer.id, token };
    },
  },
  'customer:token': {
    usage: 'customer:token --customer <id>     issue a new user token for a customer',
    needsDb: true,
    async run(flags, rt) {
      const db = dbOf(rt);
      const customerId = required(flags, 'customer');
      const customer = await db
        .selectFrom('customers')
        .select('merchant_id')
        .where('id', '=', customerId)
        .executeTakeFirst()
        .catch(() => undefined);
      if (!customer) throw new UsageError(`customer ${customerId} not found`);
      const token = await issueCustomerToken(db, { merchantId: customer.merchant_id, customerId });
      return { customerId, token };
    },
  },
  'webhook:add': {
    usage: 'webhook:add --merchant <id> --url <url> [--events a,b]   prints {id, secret} (secret shown once)',
    needsDb: true,
    async run(flags, rt) {
      const events =
        typeof flags.events === 'string' ? flags.events.split(',').map((e) => e.trim()) : undefined;
      const { config } = loadConfig();
      const endpoint = await createWebhookEndpoint(dbOf(rt), {
        merchantId: required(flags, 'merchant'),
        url: required(flags, 'url'),
        eventTypes: events?.filter((e) => e !== ''),
        allowPrivateNetworks: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
        box: await ensureAppKey(dbOf(rt), config),
      });
      return { id: endpoint.id, secret: endpoint.secret };
    },
  },
  'keys:rotate': {
    usage:
      'keys:rotate --old-key <key> | --old-key-file <file> [--dry-run]   re-seal every stored secret under APP_ENCRYPTION_KEY',
    needsDb: true,
    async run(flags, rt) {
      const { config } = loadConfig();
      const newKey = config.APP_ENCRYPTION_KEY;
      if (!newKey) throw new UsageError('Set APP_ENCRYPTION_KEY to the new key (openssl rand -hex 32)');
      const oldKey = oldKeyOf(flags);
      if (decodeKey(oldKey) === null) {
        throw new UsageError('The old key must be 32 bytes as 64 hex characters or base64');
      }
      if (decodeKey(oldKey)?.equals(decodeKey(newKey) ?? Buffer.alloc(0))) {
        throw new UsageError(
          'The old key is APP_ENCRYPTION_KEY itself: set APP_ENCRYPTION_KEY to the new key',
        );
      }
      return {
        ...(await rotateSealedSecrets(dbOf(rt), { oldKey, newKey, dryRun: flags['dry-run'] === true })),
      };
    },
  },
  'telegram:set-webhook': {
    usage: 'telegram:set-webhook                register the notify bot webhook at API_BASE_URL',
    needsDb: false,
    async run() {
      const { config } = loadConfig();
      return { ...(await registerNotifyWebhook(config)) };
    },
  },
  'points:expire': {
    usage: 'points:expire [--at <iso time>]    expire lots due at that time (default: the database now())',
    needsDb: true,
    async run(flags, rt) {
      return { ...(await expirePoints(dbOf(rt), { now: at(flags) })) };
    },
  },
  'campaigns:birthday': {
    usage:
      'campaigns:birthday [--at <iso time>] grant birthday campaigns due that day (default: the database now())',
    needsDb: true,
    async run(flags, rt) {
      return { ...(await grantBirthdayBonuses(dbOf(rt), { now: at(flags) })) };
    },
  },
  'holds:release': {
    usage: 'holds:release [--at <iso time>]    release holds past their expiry (default: the database now())',
    needsDb: true,
    async run(flags, rt) {
      return { ...(await releaseExpiredHolds(dbOf(rt), { now: at(flags) })) };
    },
  },
  'points:remind-expiring': {
    usage:
      'points:remind-expiring [--at <iso>]  tell customers whose points expire soon (POINTS_EXPIRY_REMINDER_DAYS)',
    needsDb: true,
    async run(flags, rt) {
      const { config } = loadConfig();
      return {
        ...(await remindExpiringPoints(dbOf(rt), {
          now: at(flags),
          withinDays: config.POINTS_EXPIRY_REMINDER_DAYS,
        })),
      };
    },
  },
  'points:activate': {
    usage: 'points:activate [--at <iso time>]  make pending points available when due',
    needsDb: true,
    async run(flags, rt) {
      return { ...(await activatePoints(dbOf(rt), { now: at(flags) })) };
    },
  },
};

function printHelp(print: (line: string) => void = console.log): void {
  print('Usage: npm run cli -- <command> [options] [--json]\n\nCommands:');
  for (const command of Object.values(commands)) print(`  ${command.usage}`);
}

function printHuman(result: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(result)) {
    console.log(`${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
  }
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help') {
    printHelp(name ? console.log : console.error);
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    console.error(`Unknown command: ${name}`);
    printHelp(console.error);
    return 1;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      json: { type: 'boolean' },
      name: { type: 'string' },
      merchant: { type: 'string' },
      phone: { type: 'string' },
      customer: { type: 'string' },
      outlet: { type: 'string' },
      'key-id': { type: 'string' },
      email: { type: 'string' },
      url: { type: 'string' },
      events: { type: 'string' },
      password: { type: 'string' },
      role: { type: 'string' },
      at: { type: 'string' },
      'old-key': { type: 'string' },
      'old-key-file': { type: 'string' },
      'dry-run': { type: 'boolean' },
    },
    strict: true,
  });
  const rt = command.needsDb
    ? await openRuntime(loadConfig().config, { allowEmbedded: false, poolMax: 2 })
    : null;
  try {
    const result = await command.run(values, rt);
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else if (command.human) for (const line of command.human(result)) console.log(line);
    else printHuman(result);
    // A check that found problems answers them (--json) and still fails.
    return result.ok === false ? 1 : 0;
  } finally {
    await rt?.close();
  }
}

// Exit explicitly: libraries' exit hooks must not turn a failure into exit code 0.
main(process.argv.slice(2))
  .then((code) => process.exit(code))
  .catch((error: unknown) => {
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof SchemaError) {
      console.error(error.message);
    } else if (error instanceof AppError) {
      console.error(`${error.code}: ${error.message}`);
    } else if (error instanceof Error && 'code' in error && typeof error.code === 'string') {
      console.error(`${error.code}: ${error.message}`);
    } else if (error instanceof Error && !process.env.DEBUG) {
      console.error(error.message);
    } else {
      console.error(error);
    }
    process.exit(1);
  });
