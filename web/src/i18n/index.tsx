import { createContext, type ReactNode, useCallback, useContext, useMemo, useState } from 'react';
import { en } from './en.js';
import { type MessageKey, ru } from './ru.js';

/** The languages every text exists in; Russian is the default. */
export type Locale = 'ru' | 'en';
export type { MessageKey };

const DICTIONARIES: Record<Locale, Record<MessageKey, string>> = { ru, en };
const STORAGE_KEY = 'loyalty.locale';

/** The stored choice, or Russian. */
export function storedLocale(): Locale {
  try {
    return localStorage.getItem(STORAGE_KEY) === 'en' ? 'en' : 'ru';
  } catch {
    return 'ru';
  }
}

export type Vars = Record<string, string | number>;

/** Replaces {name} placeholders. */
function interpolate(text: string, vars?: Vars): string {
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (match, name: string) => (name in vars ? String(vars[name]) : match));
}

/** Translation and locale-aware formatting for one locale. */
export interface I18n {
  locale: Locale;
  setLocale(locale: Locale): void;
  t(key: MessageKey, vars?: Vars): string;
  /** Money from minor units (kopecks), e.g. 150050 -> "1 500,50 ₽". */
  money(minor: number | string | null | undefined): string;
  /** Compact money for chart axes ("12 тыс. ₽"). */
  moneyShort(minor: number): string;
  /** An integer (points, counts) with grouping. */
  num(value: number | string | null | undefined): string;
  /** Points with the right plural form ("1 балл", "5 баллов"). */
  points(value: number | string | null | undefined): string;
  /** Just the word for `value` points ("балла", "points"). */
  pointsUnit(value: number): string;
  /** Basis points as a percentage (500 -> "5%"). */
  percentBp(bp: number): string;
  date(value: string | Date | null | undefined): string;
  dateTime(value: string | Date | null | undefined): string;
  /** "day month" for chart labels. */
  shortDate(value: string | Date): string;
}

type PluralKey = Extract<MessageKey, `points.${string}`>;

/** Builds the formatters of a locale (also used outside React, e.g. in tests). */
export function createI18n(locale: Locale, setLocale: (locale: Locale) => void = () => {}): I18n {
  const dict = DICTIONARIES[locale];
  const tag = locale === 'ru' ? 'ru-RU' : 'en-GB';
  const moneyFormat = new Intl.NumberFormat(tag, {
    style: 'currency',
    currency: 'RUB',
    currencyDisplay: 'narrowSymbol',
  });
  const moneyWhole = new Intl.NumberFormat(tag, {
    style: 'currency',
    currency: 'RUB',
    currencyDisplay: 'narrowSymbol',
    maximumFractionDigits: 0,
  });
  const compact = new Intl.NumberFormat(tag, { notation: 'compact', maximumFractionDigits: 1 });
  const integer = new Intl.NumberFormat(tag, { maximumFractionDigits: 0 });
  const percent = new Intl.NumberFormat(tag, { maximumFractionDigits: 2 });
  const plural = new Intl.PluralRules(tag);
  const dateFormat = new Intl.DateTimeFormat(tag, { day: 'numeric', month: 'short', year: 'numeric' });
  const dateTimeFormat = new Intl.DateTimeFormat(tag, {
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });
  const shortFormat = new Intl.DateTimeFormat(tag, { day: 'numeric', month: 'short' });
  const toDate = (value: string | Date) => {
    // A bare YYYY-MM-DD is a calendar day: read it as local midnight, not UTC.
    if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value)) return new Date(`${value}T00:00:00`);
    return value instanceof Date ? value : new Date(value);
  };
  const t = (key: MessageKey, vars?: Vars) => interpolate(dict[key] ?? key, vars);
  return {
    locale,
    setLocale,
    t,
    money: (minor) => (minor === null || minor === undefined ? '—' : moneyFormat.format(Number(minor) / 100)),
    moneyShort: (minor) =>
      Math.abs(minor) >= 100_000_00 ? `${compact.format(minor / 100)} ₽` : moneyWhole.format(minor / 100),
    num: (value) => (value === null || value === undefined ? '—' : integer.format(Number(value))),
    points: (value) => {
      if (value === null || value === undefined) return '—';
      const n = Number(value);
      const form = plural.select(n) as 'one' | 'few' | 'many' | 'other';
      return t(`points.${form}` as PluralKey, { n: integer.format(n) });
    },
    pointsUnit: (value) => t(`points.${plural.select(value) as 'one'}` as PluralKey, { n: '' }).trim(),
    percentBp: (bp) => `${percent.format(bp / 100)}%`,
    date: (value) => (value ? dateFormat.format(toDate(value)) : '—'),
    dateTime: (value) => (value ? dateTimeFormat.format(toDate(value)) : '—'),
    shortDate: (value) => shortFormat.format(toDate(value)),
  };
}

const I18nContext = createContext<I18n>(createI18n('ru'));

/** Provides the chosen locale (persisted in localStorage) to the tree. */
export function I18nProvider({ children, initial }: { children: ReactNode; initial?: Locale }) {
  const [locale, setLocaleState] = useState<Locale>(initial ?? storedLocale());
  const setLocale = useCallback((next: Locale) => {
    try {
      localStorage.setItem(STORAGE_KEY, next);
    } catch {
      // Private mode: the choice lasts for this page only.
    }
    document.documentElement.lang = next;
    setLocaleState(next);
  }, []);
  const value = useMemo(() => {
    document.documentElement.lang = locale;
    return createI18n(locale, setLocale);
  }, [locale, setLocale]);
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

/** The current locale's translations and formatters. */
export function useI18n(): I18n {
  return useContext(I18nContext);
}
