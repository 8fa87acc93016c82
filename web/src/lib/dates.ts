// Calendar days as the API takes them (YYYY-MM-DD, in the browser's time zone).

/** A Date as YYYY-MM-DD in local time. */
export function toDay(date: Date): string {
  const y = date.getFullYear();
  const m = String(date.getMonth() + 1).padStart(2, '0');
  const d = String(date.getDate()).padStart(2, '0');
  return `${y}-${m}-${d}`;
}

/** The day `days` before today (0 = today). */
export function daysAgo(days: number): string {
  const date = new Date();
  date.setDate(date.getDate() - days);
  return toDay(date);
}

/** The browser's IANA time zone (reports count days in it). */
export function timeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** A local YYYY-MM-DD (or datetime-local value) as an ISO instant for the API. */
export function dayStartIso(day: string): string {
  return new Date(`${day}T00:00:00`).toISOString();
}

/** The end of a local day as an ISO instant (exclusive upper bound: the next midnight). */
export function dayEndIso(day: string): string {
  const date = new Date(`${day}T00:00:00`);
  date.setDate(date.getDate() + 1);
  return date.toISOString();
}

/** The calendar day (YYYY-MM-DD) `days` before today on the clocks of an IANA time zone. */
export function daysAgoIn(days: number, zone: string): string {
  const date = new Date(Date.now() - days * 86_400_000);
  // en-CA formats as YYYY-MM-DD; a wrong zone name falls back to the browser's.
  try {
    return new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(date);
  } catch {
    return toDay(date);
  }
}
