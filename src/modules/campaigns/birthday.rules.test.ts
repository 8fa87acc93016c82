import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { birthdayIn, dueBirthdays, dueBirthdayYear } from './birthday.rules.js';

describe('birthdayIn', () => {
  it('keeps the month and day, and moves 29 February to the 28th outside leap years', () => {
    expect(birthdayIn('1990-07-15', 2027)).toBe('2027-07-15');
    expect(birthdayIn('2000-02-29', 2028)).toBe('2028-02-29');
    expect(birthdayIn('2000-02-29', 2027)).toBe('2027-02-28');
    expect(birthdayIn('2000-02-29', 2100)).toBe('2100-02-28');
    expect(birthdayIn('2000-02-29', 2000)).toBe('2000-02-29');
  });
});

describe('dueBirthdayYear', () => {
  it('is due on the day itself with daysBefore 0, and not the day before or after', () => {
    expect(dueBirthdayYear('1990-07-15', '2027-07-15', 0)).toBe(2027);
    expect(dueBirthdayYear('1990-07-15', '2027-07-14', 0)).toBeNull();
    expect(dueBirthdayYear('1990-07-15', '2027-07-16', 0)).toBeNull();
  });

  it('is due from daysBefore days ahead through the day', () => {
    expect(dueBirthdayYear('1990-07-15', '2027-07-08', 7)).toBe(2027);
    expect(dueBirthdayYear('1990-07-15', '2027-07-07', 7)).toBeNull();
  });

  it('counts the year of the birthday, across New Year', () => {
    expect(dueBirthdayYear('1985-01-02', '2026-12-29', 5)).toBe(2027);
    expect(dueBirthdayYear('1985-12-31', '2026-12-31', 0)).toBe(2026);
  });

  it('celebrates 29 February on the 28th outside leap years, and on the 29th in them', () => {
    expect(dueBirthdayYear('2000-02-29', '2027-02-28', 0)).toBe(2027);
    expect(dueBirthdayYear('2000-02-29', '2027-03-01', 0)).toBeNull();
    expect(dueBirthdayYear('2000-02-29', '2028-02-28', 0)).toBeNull();
    expect(dueBirthdayYear('2000-02-29', '2028-02-29', 0)).toBe(2028);
    expect(dueBirthdayYear('2000-02-29', '2027-02-25', 3)).toBe(2027);
    expect(dueBirthdayYear('2000-02-29', '2027-02-24', 3)).toBeNull();
    // 28 February birthdays are not moved by a leap year.
    expect(dueBirthdayYear('2001-02-28', '2028-02-28', 0)).toBe(2028);
    expect(dueBirthdayYear('2001-02-28', '2028-02-29', 0)).toBeNull();
  });

  it('matches birthdayIn: due exactly when the celebrated day is within daysBefore days', () => {
    const day = fc
      .integer({ min: Date.UTC(1999, 0, 1), max: Date.UTC(2101, 11, 31) })
      .map((ms) => new Date(ms).toISOString().slice(0, 10));
    fc.assert(
      fc.property(day, day, fc.integer({ min: 0, max: 60 }), (birth, today, daysBefore) => {
        const year = Number(today.slice(0, 4));
        const ahead = (date: string) => (Date.parse(date) - Date.parse(today)) / 86_400_000;
        const candidates = [year, year + 1].filter((y) => {
          const days = ahead(birthdayIn(birth, y));
          return days >= 0 && days <= daysBefore;
        });
        expect(dueBirthdayYear(birth, today, daysBefore)).toBe(candidates[0] ?? null);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('dueBirthdays', () => {
  it('lists one month-day per day of the window', () => {
    expect([...dueBirthdays('2027-12-30', 3)]).toEqual([
      [1230, 2027],
      [1231, 2027],
      [101, 2028],
      [102, 2028],
    ]);
  });
});
