import { describe, expect, it } from 'vitest';
import { type Campaign, parseMultiplier, toBody, toDraft } from '../../web/src/portal/campaignForm.js';

// The campaign form's pure rules: what it sends for each kind and what it refuses (the sample
// receipt's breakdown is the server's, test/e2e/campaigns.test.ts).

const saved: Campaign = {
  id: '00000000-0000-4000-8000-000000000001',
  name: 'Weekend x1.5',
  kind: 'multiplier',
  status: 'active',
  startsAt: '2026-12-01T09:00:00.000Z',
  endsAt: '2026-12-31T21:00:00.000Z',
  schedule: { weekdays: [5, 6], from: '22:00', to: '02:00' },
  conditions: {
    outletIds: ['00000000-0000-4000-8000-000000000002'],
    tiers: ['Gold'],
    categories: ['coffee'],
    minTotal: 50_000,
  },
  effect: { multiplierBp: 15_000 },
  bonusLifetimeDays: 30,
  limits: { perCustomer: 3, totalPoints: 10_000 },
  priority: 5,
  exclusive: true,
};

describe('campaign form', () => {
  it('round-trips every field of a saved campaign', () => {
    const { body, errors } = toBody(toDraft(saved));
    expect(errors).toEqual({});
    const { id: _id, ...rest } = saved;
    expect(body).toEqual(rest);
  });

  it.each([
    ['multiplier', { multiplierBp: '2' }, { multiplierBp: 20_000 }],
    ['bonus_points', { points: '40' }, { points: 40 }],
    ['welcome', { points: '100' }, { points: 100 }],
    ['birthday', { points: '300', daysBefore: '3' }, { points: 300, daysBefore: 3 }],
    [
      'referral',
      { referrerPoints: '200', refereePoints: '100' },
      { referrerPoints: 200, refereePoints: 100 },
    ],
  ] as const)('sends only the effect fields of %s', (kind, typed, effect) => {
    const draft = { ...toDraft(null), name: 'x', kind };
    draft.effect = { ...draft.effect, ...typed };
    const { body } = toBody(draft);
    expect(body?.effect).toEqual(effect);
    expect(body).toMatchObject({ status: 'draft', schedule: null, conditions: {}, limits: {}, priority: 0 });
  });

  it('names the fields it refuses', () => {
    const draft = {
      ...toDraft(null),
      name: ' ',
      startsAt: '2026-12-02T10:00',
      endsAt: '2026-12-01T10:00',
      hasSchedule: true,
      weekdays: [],
      minTotal: 'abc',
      priority: '1.5',
    };
    draft.effect = { ...draft.effect, multiplierBp: '0.5' };
    const { body, errors } = toBody(draft);
    expect(body).toBeNull();
    expect(errors).toEqual({
      name: 'required',
      'effect.multiplierBp': 'number',
      endsAt: 'order',
      weekdays: 'required',
      minTotal: 'money',
      priority: 'number',
    });
  });

  it('parses multipliers as typed', () => {
    expect(parseMultiplier('2')).toBe(20_000);
    expect(parseMultiplier('1,5')).toBe(15_000);
    expect(parseMultiplier('x3')).toBe(30_000);
    expect(parseMultiplier('0.9')).toBeNull();
    expect(parseMultiplier('')).toBeNull();
  });
});
