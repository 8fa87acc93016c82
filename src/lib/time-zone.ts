import { z } from 'zod';

/** The time zone of a merchant that has not chosen one. */
export const DEFAULT_TIME_ZONE = 'Europe/Moscow';

/** Whether `tz` is an IANA time zone name this runtime knows (offsets such as "+03:00" are not). */
export function isTimeZone(tz: string): boolean {
  if (tz.length === 0 || tz.length > 64 || /^[+-]/.test(tz)) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** An IANA time zone name such as Europe/Moscow. */
export const IanaTimeZone = z
  .string()
  .max(64)
  .refine((tz) => isTimeZone(tz), 'expected an IANA time zone such as Europe/Moscow');

/** Wall-clock reading of an instant in a time zone. */
export interface LocalTime {
  /** Calendar day, YYYY-MM-DD. */
  date: string;
  /** ISO weekday: Monday = 1 ... Sunday = 7. */
  weekday: number;
  /** Minutes since local midnight, 0..1439. */
  minutes: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

function formatterFor(tz: string): Intl.DateTimeFormat {
  let formatter = formatters.get(tz);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
    });
    formatters.set(tz, formatter);
  }
  return formatter;
}

/** The date, weekday and time of day of `at` on the clocks of `tz` (DST included, via the runtime's tz data). */
export function localTime(at: Date, tz: string): LocalTime {
  const parts: Record<string, string> = {};
  for (const part of formatterFor(tz).formatToParts(at)) parts[part.type] = part.value;
  return {
    date: `${parts.year}-${parts.month}-${parts.day}`,
    weekday: WEEKDAYS[parts.weekday ?? ''] ?? 0,
    minutes: Number(parts.hour) * 60 + Number(parts.minute),
  };
}
