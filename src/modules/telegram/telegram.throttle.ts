import { sha256Hex } from '../../lib/tokens.js';

// Telegram's documented limits: about one message per second to a chat, 20 per minute to a group,
// 30 per second per bot; above them it answers 429 with retry_after. We keep under them in process.
//
// Each limit is a sliding window ("at most N sends in any W ms"), not a refilling token bucket: a
// bucket of 30 refilled at 30/s lets 60 messages through in its first second, which is exactly the
// burst Telegram punishes. A send reserves its slot synchronously (before any await), so concurrent
// callers get distinct slots, and a slow chat never blocks the other chats of the same bot.
// Limits are per process: with several workers each keeps its own count and a 429 still pauses.

/** A limit: at most `count` sends within any window of `windowMs`. */
interface Limit {
  count: number;
  windowMs: number;
}

/** Telegram's limits as this module applies them. */
export const TELEGRAM_LIMITS = {
  chat: { count: 1, windowMs: 1_000 },
  group: { count: 20, windowMs: 60_000 },
  bot: { count: 30, windowMs: 1_000 },
} as const satisfies Record<string, Limit>;

/** Time source and sleep of the throttle; tests inject a fake clock so nothing really sleeps. */
export interface ThrottleClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const systemClock: ThrottleClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** The throttle key of a bot: a hash, so tokens never sit in memory dumps or logs as map keys. */
export function botKeyOf(token: string): string {
  return sha256Hex(token).slice(0, 32);
}

/** Reservation times (ms) of one key, ascending. */
class Window {
  readonly times: number[] = [];

  constructor(readonly limit: Limit) {}

  /** Drops reservations that can no longer share a window with a send at or after `now`. */
  prune(now: number): void {
    const cutoff = now - this.limit.windowMs;
    let drop = 0;
    while (drop < this.times.length && (this.times[drop] ?? 0) <= cutoff) drop += 1;
    if (drop > 0) this.times.splice(0, drop);
  }

  /**
   * Whether a send at `t` keeps every window of length W that contains it at or under the limit.
   * The fullest such window starts at a reservation in (t - W, t] or at t itself.
   */
  fits(t: number): boolean {
    const { count, windowMs } = this.limit;
    const starts = [t, ...this.times.filter((q) => q > t - windowMs && q <= t)];
    return starts.every((s) => this.times.filter((q) => q >= s && q < s + windowMs).length < count);
  }

  /** Times at which a send that does not fit now may start fitting (a reservation leaves a window). */
  candidates(from: number): number[] {
    return this.times.map((q) => q + this.limit.windowMs).filter((c) => c > from);
  }

  reserve(t: number): void {
    let i = this.times.length;
    while (i > 0 && (this.times[i - 1] ?? 0) > t) i -= 1;
    this.times.splice(i, 0, t);
  }

  release(t: number): void {
    const i = this.times.indexOf(t);
    if (i >= 0) this.times.splice(i, 1);
  }
}

/** Keeps sends under Telegram's per-chat and per-bot limits, and honours 429 retry_after per bot. */
export class TelegramThrottle {
  private readonly clock: ThrottleClock;
  private readonly bots = new Map<string, Window>();
  private readonly chats = new Map<string, Window>();
  private readonly pausedUntil = new Map<string, number>();
  private lastSweep = 0;

  constructor(options: { clock?: ThrottleClock } = {}) {
    this.clock = options.clock ?? systemClock;
  }

  /** Resolves when a message from bot `botKey` (see botKeyOf) to `chatId` may be sent. */
  async wait(options: { botKey: string; chatId: string | number }): Promise<void> {
    const { botKey } = options;
    const chatId = String(options.chatId);
    for (;;) {
      const now = this.clock.now();
      this.sweep(now);
      const bot = this.windowOf(this.bots, botKey, TELEGRAM_LIMITS.bot);
      // Negative ids are groups and channels: Telegram allows them 20 messages a minute, not 60.
      const chatLimit = chatId.startsWith('-') ? TELEGRAM_LIMITS.group : TELEGRAM_LIMITS.chat;
      const chat = this.windowOf(this.chats, `${botKey}:${chatId}`, chatLimit);
      bot.prune(now);
      chat.prune(now);
      const start = Math.max(now, this.pausedUntil.get(botKey) ?? 0);
      const slot = [start, ...bot.candidates(start), ...chat.candidates(start)]
        .sort((a, b) => a - b)
        .find((t) => bot.fits(t) && chat.fits(t));
      // One of the candidates always fits: the last one lies a full window after every reservation.
      const t = slot ?? start;
      bot.reserve(t);
      chat.reserve(t);
      if (t > now) await this.clock.sleep(t - now);
      // A 429 may have paused the bot while we slept: give the slot back and queue again.
      const pause = this.pausedUntil.get(botKey) ?? 0;
      if (pause > this.clock.now()) {
        bot.release(t);
        chat.release(t);
        continue;
      }
      return;
    }
  }

  /** Holds every send of the bot for `seconds` (Telegram's retry_after after a 429). */
  pauseBot(botKey: string, seconds: number): void {
    const until = this.clock.now() + Math.max(0, seconds) * 1000;
    this.pausedUntil.set(botKey, Math.max(until, this.pausedUntil.get(botKey) ?? 0));
  }

  /** Milliseconds until the bot may send again after a pause (0 when not paused). */
  pausedFor(botKey: string): number {
    return Math.max(0, (this.pausedUntil.get(botKey) ?? 0) - this.clock.now());
  }

  private windowOf(map: Map<string, Window>, key: string, limit: Limit): Window {
    let window = map.get(key);
    if (!window) {
      window = new Window(limit);
      map.set(key, window);
    }
    return window;
  }

  // Customers' chats come and go: forget idle keys so the maps do not grow without bound.
  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const map of [this.bots, this.chats]) {
      for (const [key, window] of map) {
        window.prune(now);
        if (window.times.length === 0) map.delete(key);
      }
    }
    for (const [key, until] of this.pausedUntil) if (until <= now) this.pausedUntil.delete(key);
  }
}
