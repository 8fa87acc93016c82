import { EventEmitter } from 'node:events';
import pg from 'pg';

/**
 * One dedicated connection that LISTENs on channels and re-connects (and re-LISTENs) after
 * Postgres restarts. Emits ('notification', channel, payload) and ('reconnect') so holders of
 * caches can drop them when notifications may have been missed.
 */
export class NotificationListener extends EventEmitter {
  private client: pg.Client | null = null;
  private closed = false;
  private readonly channels = new Set<string>();

  constructor(private readonly connectionString: string) {
    super();
  }

  /** Listens on a channel (now, and again after every reconnect). */
  async listen(channel: string): Promise<void> {
    this.channels.add(channel);
    if (this.client) await this.client.query(`listen "${channel}"`);
  }

  /** Connects; retries in the background until it succeeds or close() is called. */
  async start(): Promise<void> {
    try {
      await this.connect();
    } catch {
      this.scheduleReconnect();
    }
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: 'loyalty-listener',
    });
    client.on('notification', (n) => this.emit('notification', n.channel, n.payload ?? ''));
    client.on('error', () => this.handleLoss(client));
    client.on('end', () => this.handleLoss(client));
    await client.connect();
    for (const channel of this.channels) await client.query(`listen "${channel}"`);
    this.client = client;
    this.emit('reconnect');
  }

  private handleLoss(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
    client.end().catch(() => {});
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    setTimeout(() => {
      if (this.closed) return;
      this.connect().catch(() => this.scheduleReconnect());
    }, 1_000).unref();
  }

  /** Stops listening and closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }
}
