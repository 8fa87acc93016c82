import { sql } from 'kysely';
import type { Database, Executor } from '../../db/database.js';
import type { NotificationListener } from '../../db/listener.js';
import { wakeWorkers } from '../../jobs/outbox.notify.js';

/** The run-time switches operators can flip from the admin API. */
export type SwitchName = 'maintenance' | 'read_only' | 'outbox_paused';

/** Channel on which switch changes are announced to every replica. */
export const SWITCHES_CHANNEL = 'loyalty_switches';

/** Sets a switch for every replica (they apply it within a second via NOTIFY, or their next poll). */
export async function setSwitch(
  db: Executor,
  options: { name: SwitchName; enabled: boolean; by?: string },
): Promise<void> {
  await db
    .insertInto('runtime_switches')
    .values({ name: options.name, enabled: options.enabled, updated_by: options.by ?? null })
    .onConflict((oc) =>
      oc
        .column('name')
        .doUpdateSet({ enabled: options.enabled, updated_by: options.by ?? null, updated_at: sql`now()` }),
    )
    .execute();
  await sql`select pg_notify(${SWITCHES_CHANNEL}, ${options.name})`.execute(db);
  if (options.name === 'outbox_paused' && !options.enabled) await wakeWorkers(db);
}

/** The stored switches (absent = off). */
export async function readSwitches(db: Executor): Promise<Record<SwitchName, boolean>> {
  const rows = await db.selectFrom('runtime_switches').select(['name', 'enabled']).execute();
  const state: Record<SwitchName, boolean> = { maintenance: false, read_only: false, outbox_paused: false };
  for (const row of rows) state[row.name as SwitchName] = row.enabled;
  return state;
}

/**
 * A replica's view of the switches: the environment forces a mode on; the database adds what
 * operators set at run time. Refreshed on NOTIFY and every `pollMs` as a fallback.
 */
export class SwitchBoard {
  private stored: Record<SwitchName, boolean> = {
    maintenance: false,
    read_only: false,
    outbox_paused: false,
  };
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Database,
    private readonly forced: { maintenance: boolean; readOnly: boolean },
  ) {}

  /** Whether maintenance mode is on (environment or run time). */
  get isMaintenance(): boolean {
    return this.forced.maintenance || this.stored.maintenance;
  }

  /** Whether read-only mode is on (environment or run time). */
  get isReadOnly(): boolean {
    return this.forced.readOnly || this.stored.read_only;
  }

  /** The effective state with where each mode comes from. */
  describe() {
    return {
      maintenance: {
        enabled: this.isMaintenance,
        forcedByEnv: this.forced.maintenance,
        runtime: this.stored.maintenance,
      },
      readOnly: {
        enabled: this.isReadOnly,
        forcedByEnv: this.forced.readOnly,
        runtime: this.stored.read_only,
      },
      outboxPaused: { enabled: this.stored.outbox_paused },
    };
  }

  /** Reads the stored switches now. */
  async refresh(): Promise<void> {
    try {
      this.stored = await readSwitches(this.db);
    } catch {
      // Keep the last known state while the database is unreachable.
    }
  }

  /** Loads the switches and keeps them fresh. */
  async start(options: { listener?: NotificationListener; pollMs?: number } = {}): Promise<void> {
    await this.refresh();
    if (options.listener) {
      await options.listener.listen(SWITCHES_CHANNEL);
      options.listener.on('notification', (channel: string) => {
        if (channel === SWITCHES_CHANNEL) void this.refresh();
      });
      options.listener.on('reconnect', () => void this.refresh());
    }
    this.timer = setInterval(() => void this.refresh(), options.pollMs ?? 2_000);
    this.timer.unref();
  }

  /** Stops polling. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
