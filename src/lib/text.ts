import { z } from 'zod';

/** A string field PostgreSQL can store: bounded length and no NUL characters. */
export function text(min: number, max: number) {
  return z
    .string()
    .min(min)
    .max(max)
    .refine((s) => !s.includes('\u0000'), 'must not contain NUL characters');
}
