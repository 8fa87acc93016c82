import { describe, expect, it } from 'vitest';
import { en } from '../../web/src/i18n/en.js';
import { ru } from '../../web/src/i18n/ru.js';
import { formatMoneyInput, formatPercentInput, parseMoney, parsePercentBp } from '../../web/src/lib/money.js';

// Pure parts of the web front end: the two dictionaries agree, and money typed by people becomes
// integer kopecks without floating point.

describe('i18n dictionaries', () => {
  it('have the same keys in Russian and English', () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(ru).sort());
  });

  it('use the same {placeholders} in both languages', () => {
    const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const key of Object.keys(ru) as Array<keyof typeof ru>) {
      expect(placeholders(en[key]), key).toEqual(placeholders(ru[key]));
    }
  });

  it('have no empty texts', () => {
    for (const [key, text] of [...Object.entries(ru), ...Object.entries(en)])
      expect(text.trim(), key).not.toBe('');
  });
});

describe('money input', () => {
  it.each([
    ['1500', 150_000],
    ['1 500,50', 150_050],
    ['1500.5', 150_050],
    ['0,01', 1],
    ['99.90 ₽', 9990],
    ['0', 0],
  ])('parses %s as %i kopecks', (input, minor) => {
    expect(parseMoney(input)).toBe(minor);
  });

  it.each(['', 'abc', '1.234', '-5', '1,2,3', '12e3'])('rejects %j', (input) => {
    expect(parseMoney(input)).toBeNull();
  });

  it('round-trips kopecks through the input format', () => {
    for (const minor of [0, 1, 10, 99, 100, 150_050, 123_456_789]) {
      expect(parseMoney(formatMoneyInput(minor))).toBe(minor);
    }
  });

  it('parses percentages into basis points', () => {
    expect(parsePercentBp('5')).toBe(500);
    expect(parsePercentBp('2,5')).toBe(250);
    expect(parsePercentBp('12.75%')).toBe(1275);
    expect(parsePercentBp('x')).toBeNull();
    for (const bp of [0, 1, 50, 500, 550, 1275, 10_000])
      expect(parsePercentBp(formatPercentInput(bp))).toBe(bp);
  });
});
