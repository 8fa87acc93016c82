import { Cron } from 'croner';

/** The periodic jobs by name, with their default cron patterns (UTC; a sixth field is seconds). */
export const DEFAULT_JOB_SCHEDULES = {
  'points:activate': '*/5 * * * *',
  'points:expire': '7,37 * * * *',
  // Holds past their expiry give their points back within a minute (writes release them at once).
  'holds:release': '*/20 * * * * *',
  'dashboard:rollups': '45 * * * * *',
  'points:remind-expiring': '0 9 * * *',
  'alerts:monitor': '5 * * * * *',
  retention: '17 3 * * *',
  'staff:daily-summary': '0 18 * * *',
  // Hourly, so each merchant's new day (its own time zone) is served within the hour.
  'campaigns:birthday': '23 * * * *',
} as const;

/** The name of a periodic job. */
export type JobName = keyof typeof DEFAULT_JOB_SCHEDULES;

function isJobName(name: string): name is JobName {
  return Object.hasOwn(DEFAULT_JOB_SCHEDULES, name);
}

/**
 * Parses JOB_SCHEDULES (`name=pattern;name=pattern`, e.g. `alerts:monitor=5,35 * * * * *`) into the
 * patterns it overrides; returns the problems instead when a name is unknown or a pattern invalid.
 */
export function parseJobSchedules(text: string): Partial<Record<JobName, string>> | string[] {
  const schedules: Partial<Record<JobName, string>> = {};
  const problems: string[] = [];
  for (const entry of text.split(';')) {
    if (entry.trim() === '') continue;
    const at = entry.indexOf('=');
    const name = entry.slice(0, Math.max(at, 0)).trim();
    const pattern = entry.slice(at + 1).trim();
    if (at < 0 || !isJobName(name)) {
      problems.push(
        `unknown job "${at < 0 ? entry.trim() : name}" (known: ${Object.keys(DEFAULT_JOB_SCHEDULES).join(', ')})`,
      );
      continue;
    }
    try {
      new Cron(pattern, { timezone: 'UTC', paused: true }).stop();
      schedules[name] = pattern;
    } catch (err) {
      problems.push(`${name}: invalid cron pattern "${pattern}" (${(err as Error).message})`);
    }
  }
  return problems.length > 0 ? problems : schedules;
}
