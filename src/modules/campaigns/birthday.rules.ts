// Birthday campaigns on the calendar (pure, no clock): which birthdays are due on a local date.
// A birthday is celebrated on its month and day each year; 29 February on 28 February in a year
// without it. A campaign with daysBefore grants from daysBefore days before the birthday through
// the birthday itself, once per birthday: the key is the year the birthday falls in.

const DAY_MS = 86_400_000;

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** A date's month and day as one number: 229 for 29 February, 1231 for 31 December. */
export function monthDayOf(date: string): number {
  return Number(date.slice(5, 7)) * 100 + Number(date.slice(8, 10));
}

/** The day a birthday (YYYY-MM-DD) is celebrated in a year: 29 February on the 28th outside leap years. */
export function birthdayIn(birthDate: string, year: number): string {
  const monthDay = birthDate.slice(5);
  const day = monthDay === '02-29' && !isLeapYear(year) ? '02-28' : monthDay;
  return `${String(year).padStart(4, '0')}-${day}`;
}

/**
 * The birthdays due on `today` (a local date YYYY-MM-DD) for a campaign granting `daysBefore` days
 * ahead: month-day (monthDayOf) -> the year of that birthday, the key of its one grant. The window
 * runs from today to today + daysBefore; a 29 February birthday is due with 28 February in years
 * without it.
 */
export function dueBirthdays(today: string, daysBefore: number): Map<number, number> {
  const due = new Map<number, number>();
  const start = Date.parse(`${today}T00:00:00Z`);
  for (let offset = 0; offset <= daysBefore; offset++) {
    const date = new Date(start + offset * DAY_MS).toISOString().slice(0, 10);
    const year = Number(date.slice(0, 4));
    due.set(monthDayOf(date), year);
    if (date.endsWith('-02-28') && !isLeapYear(year)) due.set(229, year);
  }
  return due;
}

/** The year whose birthday of `birthDate` is due on `today`, or null when none is (see dueBirthdays). */
export function dueBirthdayYear(birthDate: string, today: string, daysBefore: number): number | null {
  return dueBirthdays(today, daysBefore).get(monthDayOf(birthDate)) ?? null;
}
