// Money typed by people ("1 500,50") to integer minor units, without floating point.

/** Parses roubles as typed (spaces, comma or dot decimals) into kopecks; null when it is not a sum. */
export function parseMoney(input: string): number | null {
  const text = input.replace(/[\s\u00a0₽]/g, '').replace(',', '.');
  const match = /^(\d{1,12})(?:\.(\d{0,2}))?$/.exec(text);
  if (!match) return null;
  const whole = Number(match[1]);
  const fraction = Number((match[2] ?? '').padEnd(2, '0'));
  return whole * 100 + fraction;
}

/** Kopecks as an editable rouble string ("1500.5" -> "1500.50"; whole sums without decimals). */
export function formatMoneyInput(minor: number): string {
  const whole = Math.trunc(minor / 100);
  const fraction = Math.abs(minor % 100);
  return fraction === 0 ? String(whole) : `${whole}.${String(fraction).padStart(2, '0')}`;
}

/** Parses a percentage ("5", "2.5", "12,75") into basis points; null when invalid. */
export function parsePercentBp(input: string): number | null {
  const text = input.trim().replace(',', '.').replace('%', '');
  const match = /^(\d{1,3})(?:\.(\d{0,2}))?$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
}

/** Basis points as an editable percentage string (550 -> "5.5"). */
export function formatPercentInput(bp: number): string {
  const whole = Math.trunc(bp / 100);
  const fraction = bp % 100;
  if (fraction === 0) return String(whole);
  return `${whole}.${String(fraction).padStart(2, '0').replace(/0$/, '')}`;
}
