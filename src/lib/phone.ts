import { parsePhoneNumberFromString } from 'libphonenumber-js/min';
import { z } from 'zod';

/**
 * Normalises what a cashier or a customer types (`8 (999) 123-45-67`, `+7 999 1234567`) to E.164.
 * Numbers without a country code are read as Russian ones, the platform's first market.
 */
export function normalizePhone(input: string): string | null {
  const parsed = parsePhoneNumberFromString(input.trim(), 'RU');
  return parsed?.isPossible() ? parsed.number : null;
}

/** A phone number field: accepts common formats, yields E.164, or fails naming the field. */
export const Phone = z
  .string()
  .min(3)
  .max(32)
  .transform((value, ctx) => {
    const e164 = normalizePhone(value);
    if (!e164) {
      ctx.addIssue({ code: 'custom', message: 'expected a phone number in E.164 format, e.g. +79991234567' });
      return z.NEVER;
    }
    return e164;
  });
